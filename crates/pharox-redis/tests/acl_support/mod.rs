//! Private redis-servers whose users are defined by an aclfile, the
//! default user disabled: what the ACL tests run on.
#![allow(dead_code)]

use pharox_redis::RedisConfig;
use pharox_redis::testkit::RedisServer;

/// The password of every test user: a tracked secret, never in an error.
pub const PASSWORD: &str = "acl-s3cret-never-logged";

/// A server whose aclfile holds `users` (`(name, rule)`) with
/// [`PASSWORD`], and `user default off`.
pub fn server(users: &[(&str, &str)]) -> RedisServer {
    RedisServer::start_with_users(users, PASSWORD)
}

/// `server`'s URL with `user` and the password.
pub fn url(server: &RedisServer, user: &str) -> String {
    format!("redis://{user}:{PASSWORD}@127.0.0.1:{}", server.port())
}

/// A configuration for `user` on `server`, with a 30 s response timeout.
pub fn config(server: &RedisServer, user: &str) -> RedisConfig {
    RedisConfig::new(url(server, user)).response_timeout(std::time::Duration::from_secs(30))
}
