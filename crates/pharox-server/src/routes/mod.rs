//! The routes and the state they share.
//!
//! Two families under `/v1`, with the same conventions (ids, errors, times):
//! the routes pharox-sdk 0.2.0 calls, in its shapes, and the routes that
//! mirror the rest of the `Storage` trait, so a client (`RemoteStorage`)
//! can implement all of it. `{pool}` is a pool's UUID or its pharox id
//! everywhere.

mod consumers;
mod import;
mod leases;
mod params;
mod pool_leases;
mod pools;
mod proxies;
mod traced;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use pharox_core::{PoolId, ProxyHostPolicy, Storage};
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::{RefOr, Schema};
use uuid::Uuid;

use crate::directory::Directory;
use crate::error::ApiError;

/// What every handler sees: the store, the id directory and the proxy
/// host policy (checked by [`App::check_proxy_host`], in `proxies.rs`).
pub(crate) struct App<S> {
    pub store: S,
    pub dir: Directory,
    pub telemetry: Arc<crate::ops::Telemetry>,
    /// Longest capacity long poll: well inside the request time budget.
    pub max_wait: Duration,
    pub proxy_hosts: ProxyHostPolicy,
    /// The OpenAPI document `/openapi.json` answers, as JSON.
    pub openapi: axum::body::Bytes,
    /// The dashboard page `/` answers (it says whether keys are asked for).
    pub dashboard: axum::body::Bytes,
}

pub(crate) type AppState<S> = Arc<App<S>>;

impl<S: Storage> App<S> {
    /// The pool a path or body names: its UUID (as the SDK sends it) or its
    /// pharox id. A UUID no pool has is tried as an id, so the store decides.
    pub async fn resolve_pool(&self, named: &str) -> Result<PoolId, ApiError> {
        if let Ok(uuid) = Uuid::try_parse(named)
            && let Some(pool) = self.dir.pool_by_uuid(&self.store, uuid).await?
        {
            return Ok(pool);
        }
        Ok(PoolId::from(named))
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Behind the API key check (when keys are configured).
    Key,
    /// `/metrics`: behind the key check unless `ServerConfig::public_metrics`.
    Metrics,
    /// No key needed (`/readyz`, `/openapi.json`, the dashboard's files).
    Public,
    /// No key, and outside the concurrency limit and time budget (`/healthz`).
    Liveness,
}

/// One operation: where it is served, who may call it, its handler and its
/// OpenAPI description. [`table`] lists them all; the router and the
/// OpenAPI document are both built from that list, so they cannot disagree.
pub(crate) struct Route<S> {
    /// The path template, e.g. `/v1/pools/{pool}`.
    pub path: String,
    /// The one method it answers.
    pub method: HttpMethod,
    /// Who may call it.
    pub access: Access,
    /// Whether the request body may be left out (an `OptionalJson` body).
    pub body_optional: bool,
    /// The handler for that method.
    pub handler: MethodRouter<AppState<S>>,
    /// Its OpenAPI operation, from the handler's `#[utoipa::path]`.
    pub operation: Operation,
    /// Adds the schemas its operation refers to.
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl<S: Storage> Route<S> {
    /// The operation `P` (a handler's `#[utoipa::path]`) served by `handler`,
    /// at `P`'s path and method, behind the key check.
    fn of<P, H, T>(handler: H) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
        H: Handler<T, AppState<S>>,
        T: 'static,
    {
        let methods = P::methods();
        let [method] = methods.as_slice() else {
            unreachable!("every operation of the table has one method")
        };
        let filter = match method {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
            HttpMethod::Put => MethodFilter::PUT,
            HttpMethod::Patch => MethodFilter::PATCH,
            HttpMethod::Delete => MethodFilter::DELETE,
            HttpMethod::Head => MethodFilter::HEAD,
            HttpMethod::Options => MethodFilter::OPTIONS,
            HttpMethod::Trace => MethodFilter::TRACE,
        };
        Self {
            path: P::path(),
            method: method.clone(),
            access: Access::Key,
            body_optional: false,
            handler: on(filter, handler),
            operation: P::operation(),
            schemas: <P as utoipa::__dev::SchemaReferences>::schemas,
        }
    }

    fn access(self, access: Access) -> Self {
        Self { access, ..self }
    }

    /// The body may be left out (the handler takes an `OptionalJson`).
    fn optional_body(mut self) -> Self {
        self.body_optional = true;
        if let Some(body) = &mut self.operation.request_body {
            body.required = Some(utoipa::openapi::Required::False);
        }
        self
    }

    /// This route, and the same at its path without the trailing slash
    /// (pharox-sdk calls collections with it; curl users often without).
    fn and_without_slash(self) -> [Self; 2] {
        let mut operation = self.operation.clone();
        operation.operation_id = operation.operation_id.map(|id| format!("{id}_no_slash"));
        let bare = Self {
            path: self.path.trim_end_matches('/').to_owned(),
            method: self.method.clone(),
            access: self.access,
            body_optional: self.body_optional,
            handler: self.handler.clone(),
            operation,
            schemas: self.schemas,
        };
        [self, bare]
    }
}

/// Every operation the service serves; `import_body_limit` is the body
/// limit of the bulk import.
pub(crate) fn table<S: Storage>(import_body_limit: usize) -> Vec<Route<S>> {
    use consumers as c;
    use import as i;
    use leases as l;
    use pool_leases as pl;
    use pools as p;
    use proxies as x;
    let mut all = Vec::new();
    // pharox-sdk: pools.
    all.extend(Route::of::<p::__path_create, _, _>(p::create::<S>).and_without_slash());
    all.extend(Route::of::<p::__path_list, _, _>(p::list::<S>).and_without_slash());
    all.push(Route::of::<p::__path_get_one, _, _>(p::get_one::<S>));
    all.push(Route::of::<p::__path_remove, _, _>(p::remove::<S>));
    all.push(Route::of::<p::__path_upsert, _, _>(p::upsert::<S>));
    // pharox-sdk: proxies (`GET …/proxies/?view=full` answers full records).
    all.extend(Route::of::<x::__path_create, _, _>(x::create::<S>).and_without_slash());
    all.extend(Route::of::<x::__path_list, _, _>(x::list::<S>).and_without_slash());
    all.push(Route::of::<x::__path_get_one, _, _>(x::get_one::<S>));
    all.push(Route::of::<x::__path_upsert, _, _>(x::upsert::<S>));
    all.push(Route::of::<x::__path_update, _, _>(x::update::<S>));
    all.push(Route::of::<x::__path_remove, _, _>(x::remove::<S>));
    // pharox-sdk: leases by id (the pool comes from the id's tag).
    all.extend(Route::of::<l::__path_acquire, _, _>(l::acquire::<S>).and_without_slash());
    all.push(Route::of::<l::__path_get_one, _, _>(l::get_one::<S>));
    all.push(Route::of::<l::__path_release, _, _>(l::release::<S>));
    all.push(Route::of::<l::__path_renew, _, _>(l::renew::<S>).optional_body());
    // The Storage trait: consumers.
    all.push(Route::of::<c::__path_ensure, _, _>(c::ensure::<S>));
    all.push(Route::of::<c::__path_list, _, _>(c::list::<S>));
    // The Storage trait: per pool.
    all.push(Route::of::<p::__path_stats, _, _>(p::stats::<S>));
    all.push(Route::of::<p::__path_stats_history, _, _>(
        p::stats_history::<S>,
    ));
    all.push(Route::of::<p::__path_snapshot, _, _>(p::snapshot::<S>));
    all.push(Route::of::<p::__path_cleanup, _, _>(p::cleanup::<S>).optional_body());
    all.push(Route::of::<p::__path_wait, _, _>(p::wait::<S>));
    all.push(Route::of::<x::__path_health, _, _>(x::health::<S>));
    all.push(Route::of::<pl::__path_find, _, _>(pl::find::<S>).optional_body());
    let mut import = Route::of::<i::__path_import, _, _>(i::import::<S>);
    import.handler = import
        .handler
        .layer(DefaultBodyLimit::max(import_body_limit));
    all.push(import);
    all.push(Route::of::<pl::__path_acquire, _, _>(pl::acquire::<S>).optional_body());
    all.push(Route::of::<pl::__path_list, _, _>(pl::list::<S>));
    all.push(Route::of::<pl::__path_get_one, _, _>(pl::get_one::<S>));
    all.push(Route::of::<pl::__path_release, _, _>(pl::release::<S>).optional_body());
    all.push(Route::of::<pl::__path_renew, _, _>(pl::renew::<S>).optional_body());
    // Operations.
    use crate::ops as o;
    all.push(Route::of::<o::__path_metrics, _, _>(o::metrics::<S>).access(Access::Metrics));
    all.push(Route::of::<o::__path_readyz, _, _>(o::readyz::<S>).access(Access::Public));
    all.push(
        Route::of::<o::__path_openapi_json, _, _>(o::openapi_json::<S>).access(Access::Public),
    );
    all.push(Route::of::<o::__path_healthz, _, _>(o::healthz).access(Access::Liveness));
    // The dashboard's files: public, the data comes from the keyed routes.
    use crate::dashboard as d;
    all.push(Route::of::<d::__path_page, _, _>(d::page::<S>).access(Access::Public));
    all.push(Route::of::<d::__path_script, _, _>(d::script).access(Access::Public));
    all.push(Route::of::<d::__path_style, _, _>(d::style).access(Access::Public));
    all
}

#[cfg(test)]
mod tests {
    use pharox_core::InMemoryStorage;

    use super::*;

    fn name(method: &HttpMethod) -> &'static str {
        match method {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
        }
    }

    #[test]
    fn every_route_a_lease_key_reaches_is_in_the_table() {
        let table = table::<InMemoryStorage>(1024);
        for (method, path) in crate::auth::LEASE_ROUTES {
            assert!(
                table
                    .iter()
                    .any(|r| r.path == *path && name(&r.method) == method.as_str()),
                "{method} {path} is allowed to lease keys but is not a route"
            );
        }
    }

    #[test]
    fn no_operation_is_served_twice() {
        let table = table::<InMemoryStorage>(1024);
        let mut seen = std::collections::BTreeSet::new();
        for r in &table {
            assert!(
                seen.insert((r.path.clone(), name(&r.method).to_owned())),
                "{}",
                r.path
            );
            let id = r.operation.operation_id.clone().unwrap_or_default();
            assert!(
                seen.insert((id, String::new())),
                "operation id of {}",
                r.path
            );
        }
    }
}
