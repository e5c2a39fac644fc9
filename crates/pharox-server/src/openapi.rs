//! The OpenAPI 3.1 document: every operation of the route table
//! ([`crate::routes::table`]) with the schemas of its bodies (derived from
//! the `pharox-wire` types), and the answers every route can give that no
//! handler states itself: bad bodies and paths (400, 413, 415, 422), the API
//! key check (401, 403) and store or server trouble (500, 503).

use pharox_core::{InMemoryStorage, Storage};
use pharox_wire::ErrorBody;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr,
    ResponseBuilder, Schema, Type,
};
use utoipa::{PartialSchema, ToSchema};

use crate::DEFAULT_IMPORT_BODY_LIMIT;
use crate::routes::{Access, Route, table};

/// The name of the API key security scheme in the document.
const API_KEY_SCHEME: &str = "api_key";

/// What the document says about a server's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Documented {
    /// API keys are configured: keyed routes say so and may answer 401/403.
    pub keys: bool,
    /// `/metrics` needs no key.
    pub public_metrics: bool,
}

/// The OpenAPI 3.1 document of `pharox serve` with API keys configured and
/// `/metrics` behind them (the document a server answers at
/// `/openapi.json` describes its own configuration).
pub fn openapi() -> OpenApi {
    let routes = table::<InMemoryStorage>(DEFAULT_IMPORT_BODY_LIMIT);
    document(
        &routes,
        Documented {
            keys: true,
            public_metrics: false,
        },
    )
}

/// The document of `routes`, served as `config` says.
pub(crate) fn document<S: Storage>(routes: &[Route<S>], config: Documented) -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
    <ErrorBody as ToSchema>::schemas(&mut schemas);
    for route in routes {
        let keyed = match route.access {
            Access::Key => true,
            Access::Metrics => !config.public_metrics,
            Access::Public | Access::Liveness => false,
        };
        let mut operation = route.operation.clone();
        complete(&mut operation, route, keyed && config.keys);
        paths.add_path_operation(&route.path, vec![route.method.clone()], operation);
        (route.schemas)(&mut schemas);
    }
    let mut components = ComponentsBuilder::new();
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    if config.keys {
        components = components.security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key of the server (PHAROX_API_KEYS or --api-keys-file); its \
                 scope (admin, lease, lease:CONSUMER) decides which routes it reaches",
            ))),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("pharox")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Leases of proxies from shared pools: the routes pharox-sdk 0.2.0 calls, \
                     and the rest of the pharox Storage trait. Errors are JSON \
                     (`ErrorBody`) with a stable `error.code`; docs/http-api.md describes \
                     every route.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// Adds to `operation` the answers its route can give that the handler does
/// not state: those of its body and parameters, of the key check when
/// `keyed`, and of the store and the protective layers.
fn complete<S>(operation: &mut Operation, route: &Route<S>, keyed: bool) {
    let has_body = operation.request_body.is_some();
    let has_params = operation.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
    });
    let mut add = |status: &str, description: &str, retry_after: bool| {
        let responses = &mut operation.responses.responses;
        if !responses.contains_key(status) {
            responses.insert(status.to_owned(), error(description, retry_after));
        }
    };
    if has_body || has_params {
        add(
            "400",
            "Invalid input (`invalid_input`, with `field` and `reason`), a body that is \
             not JSON (`invalid_json`) or a path that does not decode (`invalid_path`)",
            false,
        );
    }
    if has_body {
        add(
            "413",
            "The body is over the size limit (`payload_too_large`)",
            false,
        );
        add(
            "415",
            "A body without `Content-Type: application/json` (`unsupported_media_type`)",
            false,
        );
        add(
            "422",
            "JSON of the wrong shape (`invalid_body`; `field` is its path)",
            false,
        );
    }
    if keyed {
        add("401", "No `X-API-Key` header (`unauthorized`)", false);
        add(
            "403",
            "A key that is not accepted, or whose scope does not cover this route or \
             consumer (`forbidden`)",
            false,
        );
        operation.security = Some(vec![SecurityRequirement::new(
            API_KEY_SCHEME,
            Vec::<String>::new(),
        )]);
    }
    if route.access != Access::Liveness {
        add(
            "500",
            "A store error that retrying does not fix (`internal`, `store_corrupt`)",
            false,
        );
        add(
            "503",
            "The store is unavailable (`store_unavailable`, `store_interrupted`, \
             `store_timeout`) or the server is at its limits (`overloaded`, \
             `request_timeout`); retry after `Retry-After` seconds",
            true,
        );
    }
}

/// An error answer: an [`ErrorBody`], with `Retry-After` if `retry_after`.
fn error(description: &str, retry_after: bool) -> RefOr<utoipa::openapi::Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Schema::Object(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .build(),
                ))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    RefOr::T(response.build())
}
