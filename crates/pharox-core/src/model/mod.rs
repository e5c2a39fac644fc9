//! The data model shared by every store.

mod health;
mod ids;
mod lease;
mod pool;
mod proxy;
mod stats;

pub use health::HealthCheckResult;
pub use ids::{ConsumerName, LeaseId, POOL_UUID_NAMESPACE, PoolId, ProxyId};
pub use lease::{Lease, LeaseStatus, LeasedProxy};
pub use pool::{Consumer, ProxyPool};
pub use proxy::{Credentials, Proxy, ProxyProtocol, ProxyStatus, Secret};
pub use stats::{PoolStatsSnapshot, ProxyCounts};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::{AcquireRequest, ProxyFilters, ReleaseOutcome, Selector};

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let json = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, value, "{json}");
    }

    fn full_proxy() -> Proxy {
        let mut p = Proxy::new("pool", "2001:db8::1", 1080, ProxyProtocol::Socks5)
            .with_id("p-1")
            .with_credentials("user@corp", "p:ss/w@rd %")
            .with_status(ProxyStatus::Slow)
            .with_latency_ms(120)
            .with_source("feed")
            .with_country("DE")
            .with_city("Berlin")
            .with_location(52.52, 13.405)
            .with_isp("isp")
            .with_asn(3320)
            .with_max_concurrency(4)
            .with_extra("k", "v");
        p.checked_at = Some(Utc.timestamp_millis_opt(1_700_000_000_123).unwrap());
        p.current_leases = 2;
        p
    }

    #[test]
    fn every_model_survives_a_serde_round_trip() {
        let proxy = full_proxy();
        round_trip(&proxy);
        round_trip(&ProxyPool::new("pool").with_description("d"));
        round_trip(&Consumer {
            id: uuid::Uuid::new_v4(),
            name: "w".into(),
        });
        let t = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let lease = Lease {
            id: LeaseId::random(),
            token: 42,
            pool: "pool".into(),
            consumer: "w".into(),
            proxy: Arc::new(LeasedProxy::of(&proxy)),
            status: LeaseStatus::Active,
            acquired_at: t,
            expires_at: t + chrono::TimeDelta::seconds(30),
            released_at: None,
        };
        round_trip(&lease);
        round_trip(&PoolStatsSnapshot {
            pool: "pool".into(),
            total: 5,
            active: 4,
            available: 3,
            leased: 2,
            active_leases: 2,
            total_leases: 9,
            released_leases: 6,
            expired_leases: 1,
            collected_at: t,
        });
        round_trip(
            &HealthCheckResult::new("pool", "p-1", ProxyStatus::Inactive, t).with_latency_ms(9),
        );
        round_trip(&ReleaseOutcome::Expired);
        round_trip(&Selector::LowestLatency);
        let req = AcquireRequest::new("pool")
            .selector(Selector::RoundRobin)
            .filters(ProxyFilters::new().country("AR"));
        let back: AcquireRequest =
            serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(
            (
                back.pool,
                back.selector,
                back.duration,
                back.filters.country
            ),
            (req.pool, req.selector, req.duration, req.filters.country)
        );
    }

    #[test]
    fn urls_bracket_ipv6_and_encode_credentials() {
        let proxy = full_proxy();
        assert_eq!(
            proxy.url(),
            "socks5://user%40corp:p%3Ass%2Fw%40rd%20%25@[2001:db8::1]:1080"
        );
        assert_eq!(
            proxy.redacted_url(),
            "socks5://user%40corp:***@[2001:db8::1]:1080"
        );
        let plain = Proxy::new("pool", "proxy.example", 80, ProxyProtocol::Http);
        assert_eq!(plain.url(), "http://proxy.example:80");
        assert_eq!(LeasedProxy::of(&proxy).url(), proxy.url());
    }

    #[test]
    fn credentials_never_show_in_debug_display_or_redacted_serde() {
        let proxy = full_proxy();
        let lease_proxy = LeasedProxy::of(&proxy);
        let redacted_json = serde_json::to_string(&proxy.redacted()).unwrap();
        for text in [
            format!("{proxy:?}"),
            format!("{proxy}"),
            format!("{lease_proxy:?}"),
            format!("{:?}", proxy.credentials),
            format!("{}", proxy.credentials.as_ref().unwrap().password),
            redacted_json,
        ] {
            assert!(!text.contains("p:ss"), "password leaked: {text}");
        }
        // The real value is kept for the store.
        assert!(
            serde_json::to_string(&proxy)
                .unwrap()
                .contains("p:ss/w@rd %")
        );
    }

    #[test]
    fn statuses_protocols_and_selectors_parse_their_names() {
        for s in [
            ProxyStatus::Active,
            ProxyStatus::Inactive,
            ProxyStatus::Slow,
            ProxyStatus::Banned,
        ] {
            assert_eq!(s.as_str().parse::<ProxyStatus>().unwrap(), s);
        }
        assert_eq!(
            "SOCKS5".parse::<ProxyProtocol>().unwrap(),
            ProxyProtocol::Socks5
        );
        assert!("ftp".parse::<ProxyProtocol>().is_err());
        for sel in Selector::ALL {
            assert_eq!(sel.as_str().parse::<Selector>().unwrap(), sel);
        }
        assert_eq!(
            "round_robin".parse::<Selector>().unwrap(),
            Selector::RoundRobin
        );
        assert!("fastest".parse::<Selector>().is_err());
    }
}
