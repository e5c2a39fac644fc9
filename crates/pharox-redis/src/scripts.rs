//! Every Lua script, loaded once. Each is a shebang line, `lua/layout.lua`,
//! `lua/lib.lua` (and for selecting scripts `lua/filter.lua`, for scripts
//! that change proxies `lua/admin.lua`) followed by the script's own file;
//! the files in `lua/` carry the KEYS / ARGV / returns headers.
//! `invoke_async` sends `EVALSHA` and reloads the script after `NOSCRIPT`
//! (e.g. `SCRIPT FLUSH`).
//!
//! The shebang declares the script's flags: scripts that write are refused
//! as a whole when the server is out of memory (never halfway through), and
//! read-only scripts (`flags=no-writes`) also run then, and on replicas.

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
    pub const RELEASE: &str = lua!("#!lua", "release.lua");
    pub const RENEW: &str = lua!("#!lua", "renew.lua");
    pub const CLEANUP: &str = lua!("#!lua", "cleanup.lua");
    pub const STATS: &str = lua!("#!lua flags=no-writes", "stats.lua");
    pub const SNAPSHOT: &str = lua!("#!lua flags=no-writes", "snapshot.lua");
    pub const UPSERT_PROXY: &str = lua!("#!lua", "admin.lua", "upsert_proxy.lua");
    pub const REMOVE_PROXY: &str = lua!("#!lua", "remove_proxy.lua");
    pub const HEALTH: &str = lua!("#!lua", "admin.lua", "health.lua");
    pub const CREATE_POOL: &str = lua!("#!lua", "create_pool.lua");
    pub const REMOVE_POOL: &str = lua!("#!lua", "remove_pool.lua");
    pub const GET_PROXY: &str = lua!("#!lua flags=no-writes", "get_proxy.lua");
    pub const LIST_PROXIES: &str = lua!("#!lua flags=no-writes", "list_proxies.lua");
    /// The shared files alone (read-only), for tests that append code of
    /// their own to check the layout and the helpers.
    pub const PRELUDE: &str = lua!("#!lua flags=no-writes", "filter.lua");
}

macro_rules! scripts {
    ($($name:ident),+ $(,)?) => {
        $(
            #[doc = concat!("The `", stringify!($name), "` script.")]
            pub static $name: LazyLock<Script> = LazyLock::new(|| Script::new(source::$name));
        )+
        /// Every script with its name, for tests and diagnostics.
        pub fn all() -> Vec<(&'static str, &'static Script)> {
            vec![$((stringify!($name), &*$name)),+]
        }
    };
}

scripts!(
    ACQUIRE,
    RELEASE,
    RENEW,
    CLEANUP,
    STATS,
    SNAPSHOT,
    UPSERT_PROXY,
    REMOVE_PROXY,
    HEALTH,
    CREATE_POOL,
    REMOVE_POOL,
    GET_PROXY,
    LIST_PROXIES,
);
