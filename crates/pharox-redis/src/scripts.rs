//! Every Lua script, loaded once. Each is a shebang line, `lua/layout.lua`,
//! `lua/lib.lua` (and for selecting scripts `lua/filter.lua`, for scripts
//! that change proxies `lua/admin.lua`, for scripts that name a lease
//! `lua/lease_ref.lua`) followed by the script's own file;
//! the files in `lua/` carry the KEYS / ARGV / returns headers.
//! `invoke_async` sends `EVALSHA` and reloads the script after `NOSCRIPT`
//! (e.g. `SCRIPT FLUSH`).
//!
//! The shebang declares the script's flags: scripts that write are refused
//! as a whole when the server is out of memory (never halfway through), and
//! read-only scripts (`flags=no-writes`) also run then, and on replicas.
//!
//! Before loading, [`prepare`] writes the constants of `layout.lua` (its
//! `local NAME = literal` lines) into the text as literals: Redis runs the
//! whole file on every call, and each constant a function captures as an
//! upvalue costs instructions on every call (measured in BENCHMARKS.md).

use std::sync::LazyLock;

use deadpool_redis::redis::Script;

/// The text of a script: its shebang, the shared files, then `$file`s.
macro_rules! lua {
    ($shebang:literal $(, $file:literal)*) => {
        concat!(
            $shebang, "\n",
            include_str!("../../../lua/layout.lua"), "\n",
            include_str!("../../../lua/lib.lua"), "\n",
            $(include_str!(concat!("../../../lua/", $file)), "\n"),*
        )
    };
}

pub mod source {
    //! The full text sent to Redis for each script.
    #![allow(missing_docs)]

    pub const ACQUIRE: &str = lua!("#!lua", "filter.lua", "acquire.lua");
    pub const RELEASE: &str = lua!("#!lua", "lease_ref.lua", "release.lua");
    pub const RENEW: &str = lua!("#!lua", "lease_ref.lua", "renew.lua");
    pub const CLEANUP: &str = lua!("#!lua", "cleanup.lua");
    pub const STATS: &str = lua!("#!lua flags=no-writes", "stats.lua");
    pub const UPSERT_PROXY: &str = lua!("#!lua", "admin.lua", "upsert_proxy.lua");
    pub const REMOVE_PROXY: &str = lua!("#!lua", "remove_proxy.lua");
    pub const HEALTH: &str = lua!("#!lua", "admin.lua", "health.lua");
    pub const CREATE_POOL: &str = lua!("#!lua", "create_pool.lua");
    pub const REMOVE_POOL: &str = lua!("#!lua", "remove_pool.lua");
    pub const GET_PROXY: &str = lua!("#!lua flags=no-writes", "get_proxy.lua");
    pub const LIST_PROXIES: &str = lua!("#!lua flags=no-writes", "list_proxies.lua");
    pub const GET_LEASE: &str = lua!("#!lua flags=no-writes", "lease_ref.lua", "get_lease.lua");
    /// The shared files alone (read-only), for tests that append code of
    /// their own to check the layout and the helpers.
    pub const PRELUDE: &str = lua!("#!lua flags=no-writes", "filter.lua");
}

/// The constants of `layout.lua`: `local NAME = literal` lines, the name in
/// capitals, the literal a number or a single-quoted string.
fn constants() -> Vec<(&'static str, &'static str)> {
    include_str!("../../../lua/layout.lua")
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("local ")?;
            let (name, rest) = rest.split_once(" = ")?;
            let literal = rest.split("--").next()?.trim();
            let is_name = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let is_literal =
                (literal.starts_with('\'') && literal.ends_with('\'') && literal.len() >= 2)
                    || literal.parse::<i64>().is_ok();
            (is_name && is_literal).then_some((name, literal))
        })
        .collect()
}

/// A script's text as Redis receives it: every use of a `layout.lua`
/// constant replaced by its literal (outside strings and comments), and its
/// definition turned into a comment.
pub fn prepare(source: &str) -> String {
    static CONSTANTS: LazyLock<Vec<(&str, &str)>> = LazyLock::new(constants);
    let lookup = |ident: &str| CONSTANTS.iter().find(|(n, _)| *n == ident).map(|(_, l)| *l);
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("local ")
            && let Some((name, _)) = rest.split_once(" = ")
            && lookup(name).is_some()
        {
            out.push_str("-- ");
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut chars = line.char_indices().peekable();
        let mut ident = String::new();
        let flush = |ident: &mut String, out: &mut String| {
            match lookup(ident) {
                Some(literal) => out.push_str(literal),
                None => out.push_str(ident),
            }
            ident.clear();
        };
        while let Some((i, c)) = chars.next() {
            if c.is_ascii_alphanumeric() || c == '_' {
                ident.push(c);
                continue;
            }
            flush(&mut ident, &mut out);
            match c {
                '-' if line[i..].starts_with("--") => {
                    out.push_str(&line[i..]);
                    break;
                }
                '\'' | '"' => {
                    // A string: copied as it is, escapes included.
                    out.push(c);
                    while let Some((_, d)) = chars.next() {
                        out.push(d);
                        if d == '\\' {
                            if let Some((_, e)) = chars.next() {
                                out.push(e);
                            }
                        } else if d == c {
                            break;
                        }
                    }
                }
                c => out.push(c),
            }
        }
        flush(&mut ident, &mut out);
        out.push('\n');
    }
    out
}

macro_rules! scripts {
    ($($name:ident),+ $(,)?) => {
        $(
            #[doc = concat!("The `", stringify!($name), "` script.")]
            pub static $name: LazyLock<Script> =
                LazyLock::new(|| Script::new(&prepare(source::$name)));
        )+
        /// Every script with its name, for tests and diagnostics.
        pub fn all() -> Vec<(&'static str, &'static Script)> {
            vec![$((stringify!($name), &*$name)),+]
        }

        /// Every script's source (before [`prepare`]) with its name.
        pub fn sources() -> Vec<(&'static str, &'static str)> {
            vec![$((stringify!($name), source::$name)),+]
        }
    };
}

scripts!(
    ACQUIRE,
    RELEASE,
    RENEW,
    CLEANUP,
    STATS,
    UPSERT_PROXY,
    REMOVE_PROXY,
    HEALTH,
    CREATE_POOL,
    REMOVE_POOL,
    GET_PROXY,
    LIST_PROXIES,
    GET_LEASE,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_inlined_outside_strings_and_comments() {
        let names: Vec<&str> = constants().iter().map(|(n, _)| *n).collect();
        for name in [
            "SLOT_TOKEN",
            "SLOT_TOKEN_BASE",
            "LIMIT_MAX_SEQ",
            "WORD_ACQUIRE",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let out = prepare(
            "local SLOT_TOKEN = '#0'\n\
             x = SLOT_TOKEN .. SLOT_TOKEN_BASE .. 'SLOT_TOKEN' -- SLOT_TOKEN\n\
             y = LIMIT_MAX_SEQ + 1; z = MY_SLOT_TOKEN\n",
        );
        assert_eq!(
            out,
            "-- local SLOT_TOKEN = '#0'\n\
             x = '#0' .. '#3' .. 'SLOT_TOKEN' -- SLOT_TOKEN\n\
             y = 67108863 + 1; z = MY_SLOT_TOKEN\n"
        );
    }

    #[test]
    fn every_script_keeps_no_constant_definition() {
        for (name, source) in sources() {
            let text = prepare(source);
            for prefix in ["SLOT_", "LIMIT_", "WORD_"] {
                assert!(
                    !text.contains(&format!("\nlocal {prefix}")),
                    "{name} still defines a {prefix} constant"
                );
            }
        }
    }
}
