//! Private redis-servers whose users are defined by an aclfile, the
//! default user disabled: what the ACL tests run on.
#![allow(dead_code)]

use pharox_redis::RedisConfig;
use pharox_redis::testkit::RedisServer;

/// The password of every test user: a tracked secret, never in an error.
pub const PASSWORD: &str = "acl-s3cret-never-logged";

/// A server whose aclfile holds `users` (`(name, rule)`: `user NAME on
/// >PASSWORD RULE`) and `user default off`.
pub fn server(users: &[(&str, &str)]) -> RedisServer {
    let dir = std::env::temp_dir().join(format!(
        "pharox-acl-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.acl");
    let mut text = String::from("user default off\n");
    for (name, rule) in users {
        text.push_str(&format!("user {name} on >{PASSWORD} {rule}\n"));
    }
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap().to_owned();
    // redis-server reads the aclfile at startup (and on ACL LOAD only).
    RedisServer::start_with(&["--save", "", "--appendonly", "no", "--aclfile", &file])
}

/// `server`'s URL with `user` and the password.
pub fn url(server: &RedisServer, user: &str) -> String {
    format!("redis://{user}:{PASSWORD}@127.0.0.1:{}", server.port())
}

/// A configuration for `user` on `server`, with a 30 s response timeout.
pub fn config(server: &RedisServer, user: &str) -> RedisConfig {
    RedisConfig::new(url(server, user)).response_timeout(std::time::Duration::from_secs(30))
}
