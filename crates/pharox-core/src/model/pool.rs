//! Pools of proxies and the consumers that lease from them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ConsumerName, PoolId};

/// A named group of proxies that workers lease from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyPool {
    /// Unique id, used in every call (1 to 128 bytes, no control characters).
    pub id: PoolId,
    /// Human-readable name; defaults to the id.
    pub name: String,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
}

impl ProxyPool {
    /// A pool whose name is its id.
    pub fn new(id: impl Into<PoolId>) -> Self {
        let id = id.into();
        Self {
            name: id.as_str().to_owned(),
            id,
            description: None,
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// A worker or application that holds leases, registered by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// Stable id assigned when the consumer is first ensured.
    pub id: Uuid,
    /// Unique name.
    pub name: ConsumerName,
}
