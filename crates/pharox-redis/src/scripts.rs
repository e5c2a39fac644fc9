//! Every Lua script, loaded once. Each is `lua/lib.lua` (and for selecting
//! scripts `lua/filter.lua`) followed by the script's own file; the files in
//! `lua/` carry the KEYS / ARGV / returns headers. `invoke_async` sends
//! `EVALSHA` and reloads the script after `NOSCRIPT` (e.g. `SCRIPT FLUSH`).

use std::sync::LazyLock;

use deadpool_redis::redis::Script;

macro_rules! lua {
    ($($file:literal),+) => {
        concat!($(include_str!(concat!("../../../lua/", $file)), "\n"),+)
    };
}

pub mod source {
    //! The full text sent to Redis for each script.
    #![allow(missing_docs)]
    pub const ACQUIRE: &str = lua!("lib.lua", "filter.lua", "acquire.lua");
    pub const RELEASE: &str = lua!("lib.lua", "release.lua");
    pub const RENEW: &str = lua!("lib.lua", "renew.lua");
    pub const CLEANUP: &str = lua!("lib.lua", "cleanup.lua");
    pub const STATS: &str = lua!("lib.lua", "stats.lua");
    pub const SNAPSHOT: &str = lua!("lib.lua", "snapshot.lua");
    pub const UPSERT_PROXY: &str = lua!("lib.lua", "admin.lua", "upsert_proxy.lua");
    pub const REMOVE_PROXY: &str = lua!("lib.lua", "admin.lua", "remove_proxy.lua");
    pub const HEALTH: &str = lua!("lib.lua", "admin.lua", "health.lua");
    pub const CREATE_POOL: &str = lua!("lib.lua", "create_pool.lua");
    pub const REMOVE_POOL: &str = lua!("lib.lua", "remove_pool.lua");
    pub const GET_PROXY: &str = lua!("lib.lua", "get_proxy.lua");
    pub const PROXIES: &str = lua!("lib.lua", "proxies.lua");
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
    PROXIES,
);
