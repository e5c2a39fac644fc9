//! A Sentinel topology on loopback for tests: a primary, a replica
//! (`--replicaof`) and 3 sentinels (`sentinel monitor SERVICE … 2`, a
//! 1 s `down-after-milliseconds`), each a [`RedisServer`] on a free port,
//! stopped on drop, its log kept (and its tail printed) when a test fails.
//! [`SentinelTopology::start_tls`] starts every node and sentinel on TLS
//! only (`--tls-replication yes`: replication, the sentinels' links to the
//! nodes and to each other all go over TLS).
//! [`SentinelTopology::start_with_users`] gives the data nodes ACL users
//! only (the default user off): the replica and the sentinels log in with
//! users of their own, and clients with the caller's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{NO_PERSISTENCE, RedisHarness, RedisServer, ServerTls, write_aclfile};
use crate::redis::{self, Commands};
use crate::{RedisConfig, RedisStorage};

/// How long the sentinels wait before they call a silent primary down.
pub const DOWN_AFTER_MS: u64 = 1_000;

/// Readiness and failover waits: generous, CI machines are busy.
const WAIT: Duration = Duration::from_secs(60);

/// A primary, a replica and 3 sentinels monitoring them as one service.
#[derive(Debug)]
pub struct SentinelTopology {
    /// The data nodes: the primary at start, then the replica.
    pub nodes: Vec<RedisServer>,
    /// The 3 sentinels.
    pub sentinels: Vec<RedisServer>,
    service: String,
    /// Every node's and sentinel's TLS files, when they listen for TLS.
    tls: Option<ServerTls>,
    /// With ACL users: the password of every user, and the user clients
    /// log in as ([`client_url`](Self::client_url)).
    acl: Option<TopologyAcl>,
}

/// The ACL side of a topology started by
/// [`SentinelTopology::start_with_users`].
#[derive(Debug, Clone)]
struct TopologyAcl {
    password: String,
    client: String,
}

/// The data nodes' user the test support itself logs in as (everything).
const ADMIN_USER: &str = "pharox-test-admin";
/// The user a replica replicates as (`masteruser`).
const REPLICATION_USER: &str = "pharox-test-replication";
/// The rule of the replication user.
const REPLICATION_RULE: &str = "+psync +replconf +ping";
/// The user the sentinels log in to the data nodes as (`sentinel auth-user`).
const SENTINEL_USER: &str = "pharox-test-sentinel";
/// What Sentinel needs on the data nodes (the Redis Sentinel docs' rule).
const SENTINEL_RULE: &str = "allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite \
                             +role +publish +info +client|setname +client|kill +script|kill";

/// A blocking connection to the server on `port` (tests only): over TLS
/// when `tls` is given, verifying the server against its CA and showing
/// its certificate as the client's (the topology's certificate serves
/// both purposes); as the admin user when the data nodes have ACL users
/// (`password`).
fn connect(
    port: u16,
    tls: Option<&ServerTls>,
    password: Option<&str>,
) -> redis::RedisResult<redis::Connection> {
    let auth = password.map_or_else(String::new, |pw| format!("{ADMIN_USER}:{pw}@"));
    let client = match tls {
        None => redis::Client::open(format!("redis://{auth}127.0.0.1:{port}"))?,
        Some(tls) => {
            let read = |p: &std::path::Path| std::fs::read(p).map_err(redis::RedisError::from);
            redis::Client::build_with_tls(
                format!("rediss://{auth}127.0.0.1:{port}"),
                redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: read(&tls.cert)?,
                        client_key: read(&tls.key)?,
                    }),
                    root_cert: Some(read(&tls.ca)?),
                },
            )?
        }
    };
    client.get_connection_with_timeout(Duration::from_secs(2))
}

impl SentinelTopology {
    /// Starts the topology for `service` and returns once it is ready:
    /// the replica is in sync, and every sentinel sees the replica and
    /// the two other sentinels (so it can vote a failover). Blocks the
    /// calling thread (for up to a minute on a busy machine).
    pub fn start(service: &str) -> Self {
        Self::start_with(service, None, None)
    }

    /// Like [`start`](Self::start), the data nodes with ACL users only
    /// (`user default off`), every one with `password`: `users` (`(NAME,
    /// RULE)`), a user of everything for the test support, one the
    /// replica replicates as (`masteruser`) and one the sentinels log in
    /// as (`sentinel auth-user`, with the rule the Redis Sentinel docs
    /// give). The sentinels themselves need no login. Clients log in as
    /// `client` ([`client_url`](Self::client_url), and
    /// [`RedisHarness::on_sentinel`]).
    pub fn start_with_users(
        service: &str,
        users: &[(&str, &str)],
        password: &str,
        client: &str,
    ) -> Self {
        let mut all = users.to_vec();
        all.extend([
            (ADMIN_USER, "+@all ~* &*"),
            (REPLICATION_USER, REPLICATION_RULE),
            (SENTINEL_USER, SENTINEL_RULE),
        ]);
        let file = write_aclfile(&all, password);
        let acl = TopologyAcl {
            password: password.to_owned(),
            client: client.to_owned(),
        };
        Self::start_with(service, None, Some((file, acl)))
    }

    /// Like [`start`](Self::start), every node and sentinel listening for
    /// TLS only with the certificate of `tls`, which must be valid for
    /// 127.0.0.1 both as a server's and as a client's (the nodes and
    /// sentinels show it to each other), and clients checked against its
    /// CA when `tls.require_client_cert`. [`url`](Self::url) is then
    /// `rediss+sentinel://…`.
    pub fn start_tls(service: &str, tls: ServerTls) -> Self {
        Self::start_with(service, Some(tls), None)
    }

    fn start_with(
        service: &str,
        tls: Option<ServerTls>,
        acl: Option<(String, TopologyAcl)>,
    ) -> Self {
        let mut login: Vec<String> = Vec::new();
        if let Some((file, acl)) = &acl {
            login.extend(
                [
                    "--aclfile",
                    file,
                    "--masteruser",
                    REPLICATION_USER,
                    "--masterauth",
                    &acl.password,
                ]
                .map(str::to_owned),
            );
        }
        let node = |args: &[&str]| {
            let mut all: Vec<&str> = login.iter().map(String::as_str).collect();
            all.extend_from_slice(args);
            match &tls {
                None => {
                    let mut plain = NO_PERSISTENCE.to_vec();
                    plain.extend_from_slice(&all);
                    RedisServer::start_with(&plain)
                }
                Some(tls) => {
                    all.extend(["--tls-replication", "yes"]);
                    RedisServer::start_tls(tls.clone(), &all)
                }
            }
        };
        let primary = node(&[]);
        let port = primary.port().to_string();
        let replica = node(&["--replicaof", "127.0.0.1", &port]);
        let mut conf = format!(
            "sentinel monitor {service} 127.0.0.1 {port} 2\n\
             sentinel down-after-milliseconds {service} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {service} 10000\n\
             sentinel parallel-syncs {service} 1\n"
        );
        if let Some((_, acl)) = &acl {
            conf.push_str(&format!(
                "sentinel auth-user {service} {SENTINEL_USER}\n\
                 sentinel auth-pass {service} {}\n",
                acl.password
            ));
        }
        let sentinels = (0..3)
            .map(|_| match &tls {
                None => RedisServer::start_sentinel(&conf),
                Some(tls) => RedisServer::start_sentinel_tls(&conf, tls.clone()),
            })
            .collect();
        let topology = Self {
            nodes: vec![primary, replica],
            sentinels,
            service: service.to_owned(),
            tls,
            acl: acl.map(|(_, acl)| acl),
        };
        topology.wait_until_ready();
        topology
    }

    /// The TLS files every node and sentinel uses, on a TLS topology.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// The monitored service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/SERVICE`
    /// (`rediss+sentinel://` on TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let scheme = if self.tls.is_some() {
            "rediss+sentinel"
        } else {
            "redis+sentinel"
        };
        format!("{scheme}://{}/{}", hosts.join(","), self.service)
    }

    /// [`url`](Self::url) with the client user and its password before
    /// the sentinels, on a topology with ACL users (else `url` itself).
    pub fn client_url(&self) -> String {
        let url = self.url();
        match &self.acl {
            None => url,
            Some(acl) => url.replacen(
                "sentinel://",
                &format!("sentinel://{}:{}@", acl.client, acl.password),
                1,
            ),
        }
    }

    /// The data nodes' admin password, on a topology with ACL users.
    fn node_password(&self) -> Option<&str> {
        self.acl.as_ref().map(|a| a.password.as_str())
    }

    /// `SENTINEL <args…>` on sentinel `i`.
    fn ask<T: redis::FromRedisValue>(&self, i: usize, args: &[&str]) -> redis::RedisResult<T> {
        let mut con = connect(self.sentinels[i].port(), self.tls.as_ref(), None)?;
        redis::cmd("SENTINEL").arg(args).query(&mut con)
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + WAIT;
        let replica_port = self.nodes[1].port().to_string();
        loop {
            let synced = connect(
                self.nodes[1].port(),
                self.tls.as_ref(),
                self.node_password(),
            )
            .and_then(|mut c| {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut c)
            })
            .is_ok_and(|info| info.contains("master_link_status:up"));
            let seen = (0..self.sentinels.len()).all(|i| {
                let replicas: Vec<HashMap<String, String>> = self
                    .ask(i, &["replicas", &self.service])
                    .unwrap_or_default();
                let master: HashMap<String, String> =
                    self.ask(i, &["master", &self.service]).unwrap_or_default();
                replicas.iter().any(|r| {
                    r.get("port") == Some(&replica_port)
                        && r.get("flags").is_some_and(|f| !f.contains("down"))
                }) && master.get("num-other-sentinels").map(String::as_str) == Some("2")
            });
            if synced && seen {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel topology was not ready within {WAIT:?} (replica in sync: {synced})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port the sentinels name as the primary now (by a majority of
    /// those that answer), if they agree on one.
    pub fn primary_port(&self) -> Option<u16> {
        let mut votes: HashMap<u16, usize> = HashMap::new();
        for i in 0..self.sentinels.len() {
            let addr: redis::RedisResult<Option<(String, u16)>> =
                self.ask(i, &["get-master-addr-by-name", &self.service]);
            if let Ok(Some((_, port))) = addr {
                *votes.entry(port).or_default() += 1;
            }
        }
        votes.into_iter().find(|(_, n)| *n >= 2).map(|(p, _)| p)
    }

    /// The data node on `port`.
    pub fn node(&self, port: u16) -> Option<&RedisServer> {
        self.nodes.iter().find(|n| n.port() == port)
    }

    /// Kills the current primary (SIGKILL, as a crash would) and returns
    /// its port. Blocks the calling thread briefly.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self
            .primary_port()
            .expect("the sentinels agree on a primary");
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("the primary is one of the topology's nodes");
        node.kill();
        port
    }

    /// Waits until a majority of sentinels name a primary other than `old`
    /// and that node answers `ROLE` as a master; returns its port. Panics
    /// after a minute.
    pub fn wait_for_new_primary(&self, old: u16) -> u16 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(port) = self.primary_port().filter(|p| *p != old) {
                let is_master = connect(port, self.tls.as_ref(), self.node_password())
                    .and_then(|mut c| redis::cmd("ROLE").query::<redis::Value>(&mut c))
                    .is_ok_and(|v| format!("{v:?}").contains("master"));
                if is_master {
                    return port;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels did not promote a new primary within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the sentinels for a failover without killing anything
    /// (`SENTINEL FAILOVER`): the primary is demoted to a replica.
    pub fn force_failover(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            // Refused (`INPROG`, `NOGOODSLAVE`) while an earlier failover
            // settles or the replica is not yet in sync: try again.
            match self.ask::<String>(0, &["failover", &self.service]) {
                Ok(_) => return,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "SENTINEL FAILOVER was refused for {WAIT:?}: {e}"
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sets `key` on the primary directly (to tell which node is which).
    pub fn set_on(&self, port: u16, key: &str, value: &str) -> redis::RedisResult<()> {
        connect(port, self.tls.as_ref(), self.node_password())?.set(key, value)
    }
}

impl RedisHarness {
    /// A store through `topology` (shared with other harnesses) under a key
    /// prefix of its own, with a 30 s response timeout (on a TLS topology,
    /// its CA and certificate as the client's; on one with ACL users, as
    /// its client user), configured further
    /// by `adjust` (for the contract suite through Sentinel).
    pub async fn on_sentinel(
        topology: &SentinelTopology,
        adjust: impl FnOnce(RedisConfig) -> RedisConfig,
    ) -> Self {
        let mut base = RedisConfig::new(topology.client_url())
            .prefix(format!("pharox-sentinel-{:08x}", fastrand::u32(..)))
            .response_timeout(Duration::from_secs(30));
        if let Some(tls) = &topology.tls {
            base = base
                .tls_ca_file(&tls.ca)
                .tls_client_cert(&tls.cert, &tls.key);
        }
        let storage = RedisStorage::connect(adjust(base))
            .await
            .expect("connect through the sentinels");
        Self {
            server: None,
            storage,
            recorder: None,
        }
    }
}
