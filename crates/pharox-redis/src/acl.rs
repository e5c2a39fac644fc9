//! Redis ACL users: the least-privilege rules a pharox client and a
//! `pharox worker` need, and the mapping of a refusal (`NOPERM`) to a clear,
//! non-retryable error that says what was refused.
//!
//! The command lists are what the adapter sends (`conn.rs`, `store/`,
//! `settings.rs`) and what its scripts call (`lua/`): ACL checks every
//! `redis.call` of a script too, with the keys it passes. Every key is
//! under `<prefix>:` (`keys.rs`), so `~<prefix>:*` covers them all and no
//! other. The README's "Redis ACL users" section shows the rules for the
//! default prefix; tests run the contract suite and the worker with exactly
//! them (`tests/contract_redis_acl.rs`, `tests/acl.rs`).

use std::fmt;

use deadpool_redis::redis::RedisError;
use pharox_core::Error;

/// Commands the adapter sends itself, on behalf of every client
/// (`RedisStorage` and everything built on it: `pharox serve`, the admin
/// commands, `pharox stats`).
pub const CLIENT_COMMANDS: &[&str] = &[
    // Scripts: run by SHA, loaded on NOSCRIPT (never EVAL, never FUNCTION).
    "evalsha",
    "script|load",
    // Connection: `connect`'s probe, deadpool's recycling (pooled mode).
    "ping",
    "unwatch",
    // `connect`'s version and eviction-policy checks (`INFO server`,
    // `INFO memory`); refused, they are skipped with a warning.
    "info",
    // `redis+sentinel://`: each lookup checks that the primary the
    // sentinels name answers `ROLE` as a master.
    "role",
    // Reads of the registry, proxy records and stats snapshots (one
    // MULTI/EXEC), and `pharox stats --history` (the worker's stream).
    "multi",
    "exec",
    "time",
    "getrange",
    "hget",
    "hgetall",
    "hvals",
    "hlen",
    "zrange",
    "zcard",
    "smembers",
    "xrevrange",
    // Registry writes (pools, consumers).
    "hset",
    "hsetnx",
    "hdel",
];

/// Commands the scripts in `lua/` call (ACL checks each of them).
pub const SCRIPT_COMMANDS: &[&str] = &[
    "bitfield",
    "bitfield_ro",
    "exists",
    "geoadd",
    "get",
    "set",
    "unlink",
    "hget",
    "hmget",
    "hset",
    "hdel",
    "hlen",
    "sadd",
    "srem",
    "scard",
    "sismember",
    "zadd",
    "zrem",
    "zcard",
    "zcount",
    "zrange",
    "zrangebyscore",
    "zscore",
    "time",
];

/// What `pharox worker` sends beyond a client's commands: the capped stats
/// history (`XADD … MAXLEN ~`, which trims as it appends).
pub const WORKER_EXTRA_COMMANDS: &[&str] = &["xadd"];

/// The rule (what follows `ACL SETUSER <name> on >password`, or
/// `user <name> on >password` in an aclfile) that a client using the key
/// `prefix` needs: keys under `<prefix>:`, no channels, and exactly the
/// commands of [`CLIENT_COMMANDS`] and [`SCRIPT_COMMANDS`].
pub fn client_rule(prefix: &str) -> String {
    rule(prefix, &[])
}

/// The rule `pharox worker` needs: [`client_rule`] plus
/// [`WORKER_EXTRA_COMMANDS`].
pub fn worker_rule(prefix: &str) -> String {
    rule(prefix, WORKER_EXTRA_COMMANDS)
}

fn rule(prefix: &str, extra: &[&str]) -> String {
    let mut commands: Vec<&str> = CLIENT_COMMANDS
        .iter()
        .chain(SCRIPT_COMMANDS)
        .chain(extra)
        .copied()
        .collect();
    // Scripts first, then the rest alphabetically: a stable, readable line.
    commands.sort_by_key(|c| (!c.contains("eval") && !c.starts_with("script"), *c));
    commands.dedup();
    let mut out = format!("resetkeys ~{prefix}:* resetchannels -@all");
    for c in commands {
        out.push_str(" +");
        out.push_str(c);
    }
    out
}

/// Where the README explains the rules (quoted by every refusal).
pub const README_SECTION: &str = "README, \"Redis ACL users\"";

/// A command or key the server's ACL refused to the connecting user: the
/// source of the [`Error::Backend`] a refusal is reported as (not
/// retryable: the same user is refused again). Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRefusal {
    /// The pharox operation that was refused (`acquire`, `connect`, …).
    pub operation: &'static str,
    /// What was refused: "the `evalsha` command", "a key", …
    pub refused: String,
}

impl fmt::Display for AclRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Redis ACL user may not use {} (NOPERM, during `{}`): grant the user pharox's \
             rule ({README_SECTION})",
            self.refused, self.operation
        )
    }
}

impl std::error::Error for AclRefusal {}

/// What a refusal's message names: the quoted command, or keys.
fn what_was_refused(detail: &str) -> String {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("key") {
        // Which keys is not said; the pattern is what to check.
        return "a key it was given (is the key pattern `~<prefix>:*` for this prefix?)".into();
    }
    if lower.contains("channel") {
        return "a channel".into();
    }
    // Redis: "this user has no permissions to run the 'evalsha' command".
    // A command name is one word; an apostrophe ("can't") is not a quote.
    let is_name = |w: &str| {
        !w.is_empty()
            && w.len() <= 64
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '|' | '_' | '-' | '.'))
    };
    if let Some(command) = detail.split('\'').skip(1).step_by(2).find(|w| is_name(w)) {
        let inside = if lower.contains("script") {
            " inside a script"
        } else {
            ""
        };
        return format!("the `{}` command{inside}", command.to_ascii_lowercase());
    }
    if lower.contains("script") {
        // Redis 7.0 does not name a command a script was refused.
        return "a command a pharox script calls (the server's `ACL LOG` names it)".into();
    }
    "a command it sent".into()
}

/// `e` as a clear refusal, if it is an ACL one: a `NOPERM` reply, or the
/// error a script gets when one of its calls is refused.
pub(crate) fn refusal(op: &'static str, e: &RedisError) -> Option<Error> {
    // A refusal inside MULTI/EXEC comes as a pipeline error, whose detail
    // is only in its text (a server reply: it never holds the password).
    let text = e.to_string();
    let detail = e.detail().unwrap_or(&text);
    let noperm = e.code() == Some("NOPERM") || text.contains("NOPERM");
    // Redis 7.0 reports a refused call inside a script as `ERR The user
    // executing the script can't run this command or subcommand`.
    let in_script = text.contains("The user executing the script can't");
    if !noperm && !in_script {
        return None;
    }
    Some(Error::Backend {
        source: Box::new(AclRefusal {
            operation: op,
            refused: what_was_refused(detail),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_what_was_refused() {
        assert_eq!(
            what_was_refused("this user has no permissions to run the 'evalsha' command"),
            "the `evalsha` command"
        );
        assert_eq!(
            what_was_refused("User u has no permissions to run the 'zadd' command script: x"),
            "the `zadd` command inside a script"
        );
        assert!(
            what_was_refused("this user has no permissions to access one of the keys")
                .starts_with("a key")
        );
        assert!(
            what_was_refused("The user executing the script can't run this command or subcommand script: 89, on @user_script:1.")
                .starts_with("a command a pharox script calls")
        );
    }

    #[test]
    fn the_worker_rule_is_the_client_rule_and_xadd() {
        let client = client_rule("pharox");
        let worker = worker_rule("pharox");
        assert!(
            client.starts_with("resetkeys ~pharox:* resetchannels -@all +evalsha +script|load")
        );
        assert!(!client.contains("+xadd"));
        assert!(worker.contains("+xadd"));
        assert_eq!(worker.replace(" +xadd", ""), client);
    }
}
