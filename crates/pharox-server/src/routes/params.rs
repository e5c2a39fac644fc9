//! The path parameters of the routes, typed: each handler extracts one of
//! these, and the OpenAPI document describes the same structs.

use serde::Deserialize;
use utoipa::IntoParams;

/// `{pool}`: a pool's UUID (as pharox-sdk sends it) or its pharox id.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PoolPath {
    /// The pool's UUID or its pharox id.
    pub pool: String,
}

/// `{pool}/…/{proxy}`: a proxy of a pool.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ProxyPath {
    /// The pool's UUID or its pharox id.
    pub pool: String,
    /// The proxy's id in the pool.
    pub proxy: String,
}

/// `{lease}`: a lease by id alone (its pool comes from the id's tag).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct LeasePath {
    /// The lease id (a UUID; anything else is 400 `invalid_input`).
    #[param(format = Uuid)]
    pub lease: String,
}

/// `{pool}/leases/{lease}`: a lease of a named pool.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PoolLeasePath {
    /// The pool's UUID or its pharox id.
    pub pool: String,
    /// The lease id (a UUID; anything else is 400 `invalid_input`).
    #[param(format = Uuid)]
    pub lease: String,
}
