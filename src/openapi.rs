//! The OpenAPI documents: one for the whole public API, one per module (its public routes plus its
//! `/internal` operations). `shop openapi` writes them to `openapi/`, together with the AsyncAPI documents
//! of the modules' events ([`crate::asyncapi`]); a test fails when they drift.

use std::path::Path;

use actix_web::App;
use serde_json::json;
use shop_kernel::access::{describe, reachable_over_http};
use shop_kernel::rpc::{Operation, Retry};
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

type Routes = fn(&mut ServiceConfig);

fn collect(routes: &[Routes]) -> OpenApi {
    let mut app = App::new().into_utoipa_app();
    for r in routes {
        app = app.configure(*r);
    }
    app.split_for_parts().1
}

/// The currency the committed documents state (the default of `SHOP_CURRENCY`); a server serves its own
/// at `/openapi.json`.
pub const DOCUMENTED_CURRENCY: &str = "EUR";

/// Adds what every document shares: info, security schemes and the problem schema, and pins `Money.currency`
/// to the shop's one currency (anything else is refused, so the schema says so).
pub fn finish(mut doc: OpenApi, title: &str, description: &str, currency: &str) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title(title)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(description))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("Access token from POST /api/v1/auth/token"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "service_token",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            shop_kernel::rpc::SERVICE_TOKEN_HEADER,
            "The service credential: the shared SHOP_SERVICE_TOKEN, or this service's own SHOP_SERVICE_SECRET \
             together with its name in x-shop-service",
        ))),
    );
    // Problems and pages are referenced by name from handlers; make sure their schemas are present.
    use utoipa::PartialSchema as _;
    use utoipa::ToSchema as _;
    for (name, schema) in [
        (shop_kernel::Problem::name(), shop_kernel::Problem::schema()),
        (
            shop_kernel::FieldError::name(),
            shop_kernel::FieldError::schema(),
        ),
        (shop_kernel::Money::name(), shop_kernel::Money::schema()),
    ] {
        components.schemas.entry(name.to_string()).or_insert(schema);
    }
    pin_currency(&mut doc, currency);
    doc
}

fn pin_currency(doc: &mut OpenApi, currency: &str) {
    if let Some(money) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("Money"))
    {
        pin_money_currency(money, currency);
    }
}

/// Pins the `currency` of the `Money` schema to `currency` (shared with the AsyncAPI documents).
pub(crate) fn pin_money_currency(
    money: &mut utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    currency: &str,
) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let RefOr::T(Schema::Object(money)) = money else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(field))) = money.properties.get_mut("currency") {
        field.enum_values = Some(vec![json!(currency)]);
        field.description = Some(format!(
            "ISO 4217 code: the shop's one currency, {currency} here (`SHOP_CURRENCY`)."
        ));
    }
}

fn retry_name(r: Retry) -> &'static str {
    match r {
        Retry::Read => "read (retried)",
        Retry::Idempotent => "idempotent (retried)",
        Retry::Once => "once (retried only if never sent)",
    }
}

/// A markdown table of a contract's operations, for the `/internal` path's description.
fn operations_table(module: &str, ops: &[Operation]) -> String {
    let mut out = format!(
        "Each method of the `{module}` contract is `POST /internal/{module}/<operation>`. The body is a JSON \
         object of the arguments by name; 200 carries the result as JSON, any error is a problem document whose \
         `code` maps back to the module error.\n\nThe caller is named in `x-shop-origin` (`client`, or `module:<name>`, which the credential must be allowed \
         to speak for); each operation admits only the callers listed. Arguments a server does not know are \
         ignored, and arguments added later are optional, so callers and servers of neighbouring versions can \
         talk during a rolling deploy. Operations only the system may call are not served here.\n\n\
         | operation | arguments | result | retry | callers | |\n|---|---|---|---|---|---|\n"
    );
    for op in ops.iter().filter(|op| reachable_over_http(op.access)) {
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` | {} | {} | {} |\n",
            op.name,
            op.args,
            op.returns,
            retry_name(op.retry),
            describe(op.access),
            op.doc.trim().replace('\n', " ")
        ));
    }
    out
}

/// The `/internal/<module>/{operation}` path: one POST per contract method, described by its table.
fn internal_path(module: &str, ops: &[Operation]) -> Result<PathItem, serde_json::Error> {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
        })
    };
    serde_json::from_value(json!({
        "post": {
            "tags": [format!("{module}-internal")],
            "summary": format!("Runs one operation of the {module} contract for another service."),
            "description": operations_table(module, ops),
            "operationId": format!("{module}_internal_call"),
            "parameters": [{
                "name": "operation",
                "in": "path",
                "description": "The trait method's name",
                "required": true,
                "schema": { "type": "string", "enum": ops.iter().filter(|op| reachable_over_http(op.access)).map(|op| op.name).collect::<Vec<_>>() }
            }],
            "requestBody": {
                "description": "The method's arguments by name; an empty body is `{}` (for methods without arguments)",
                "content": { "application/json": { "schema": { "type": "object" } } },
                "required": false
            },
            "responses": {
                "200": {
                    "description": "The method's result",
                    "content": { "application/json": {} }
                },
                "400": problem("`bad_call`: the body or the arguments cannot be read"),
                "401": problem("`service_unauthenticated`: missing or rejected service credential; or a module error (invalid token or credentials)"),
                "403": problem("`origin_not_allowed`: the credential may not speak for that module; or a module error: the caller may not do this"),
                "404": problem("`unknown_operation`; or a not-found module error"),
                "409": problem("A module error (conflict)"),
                "422": problem("A module validation error"),
                "429": problem("A module error: throttled"),
                "503": problem("A module this one needs is unavailable")
            },
            "security": [{ "service_token": [] }]
        }
    }))
}

/// `GET /internal/<module>`: the authenticated readiness probe other services send.
fn probe_path(module: &str) -> Result<PathItem, serde_json::Error> {
    serde_json::from_value(json!({
        "get": {
            "tags": [format!("{module}-internal")],
            "summary": format!("Says that this process serves {module} and accepts the caller's service credential."),
            "operationId": format!("{module}_internal_probe"),
            "responses": {
                "200": {
                    "description": "Served here; the operations it offers",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["module", "operations"],
                        "properties": {
                            "module": { "type": "string" },
                            "operations": { "type": "array", "items": { "type": "string" } }
                        }
                    } } }
                },
                "401": {
                    "description": "`service_unauthenticated`: missing or rejected service credential",
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            },
            "security": [{ "service_token": [] }]
        }
    }))
}

/// The `/internal` paths of a module: its operations and its probe.
fn internal_paths(module: &str, ops: &[Operation]) -> Result<Vec<(String, PathItem)>, String> {
    let err = |e: serde_json::Error| format!("{module}: {e}");
    Ok(vec![
        (
            format!("/internal/{module}/{{operation}}"),
            internal_path(module, ops).map_err(err)?,
        ),
        (
            format!("/internal/{module}"),
            probe_path(module).map_err(err)?,
        ),
    ])
}

fn module_document(module: &str, public: Routes, ops: &[Operation]) -> Result<OpenApi, String> {
    let mut doc = collect(&[public]);
    for (path, item) in internal_paths(module, ops)? {
        doc.paths.paths.insert(path, item);
    }
    Ok(finish(
        doc,
        &format!("shop {module}"),
        &format!(
            "The {module} module: its public routes and the /internal operations other services call."
        ),
        DOCUMENTED_CURRENCY,
    ))
}

/// Every document, by file name: `shop.json` (the whole public API) and one per module of the table.
pub fn documents() -> Result<Vec<(String, OpenApi)>, String> {
    let mut public: Vec<Routes> = vec![crate::server::operations_routes];
    public.extend(crate::modules::ALL.iter().map(|m| m.public_routes));
    let mut docs = vec![(
        "shop.json".to_string(),
        finish(
            collect(&public),
            "shop",
            "The public HTTP API of shop, version 1.",
            DOCUMENTED_CURRENCY,
        ),
    )];
    for def in crate::modules::ALL {
        docs.push((
            format!("{}.json", def.name),
            module_document(def.name, def.public_routes, def.operations)?,
        ));
    }
    Ok(docs)
}

/// The `/internal` paths of a local module, for the document of what a process serves.
pub fn internal_paths_of(module: crate::config::Module) -> Result<Vec<(String, PathItem)>, String> {
    internal_paths(module.name(), module.def().operations)
}

/// The exact bytes written for a document.
pub fn render(doc: &OpenApi) -> Result<String, String> {
    doc.to_pretty_json()
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| e.to_string())
}

/// Every file `shop openapi` owns, rendered, by file name: the OpenAPI documents, then the AsyncAPI ones.
fn files() -> Result<Vec<(String, String)>, String> {
    let mut out = documents()?
        .into_iter()
        .map(|(name, doc)| Ok((name, render(&doc)?)))
        .collect::<Result<Vec<_>, String>>()?;
    out.extend(crate::asyncapi::rendered()?);
    Ok(out)
}

/// AsyncAPI files in `dir` that the code no longer produces (a module that stopped publishing events).
fn stale_asyncapi_files(dir: &Path, expected: &[(String, String)]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stale: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.ends_with(crate::asyncapi::FILE_SUFFIX) && !expected.iter().any(|(n, _)| n == name)
        })
        .collect();
    stale.sort();
    stale
}

/// Writes every document (OpenAPI and AsyncAPI) into `dir`, and removes AsyncAPI files the code no longer
/// produces.
pub fn write_all(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = files()?;
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for name in stale_asyncapi_files(dir, &files) {
        let path = dir.join(name);
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The documents in `dir` (OpenAPI and AsyncAPI) that differ from the code: missing files count, and so do
/// AsyncAPI files of modules that publish nothing any more.
pub fn drifted(dir: &Path) -> Result<Vec<String>, String> {
    let files = files()?;
    let mut out = Vec::new();
    for (name, expected) in &files {
        let actual = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if actual != *expected {
            out.push(name.clone());
        }
    }
    out.extend(
        stale_asyncapi_files(dir, &files)
            .into_iter()
            .map(|name| format!("{name} (stale)")),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_openapi_documents_match_the_code() -> Result<(), String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
        let drift = drifted(&dir)?;
        assert!(
            drift.is_empty(),
            "openapi/ is stale ({drift:?}): run `cargo run -- openapi`"
        );
        Ok(())
    }

    #[test]
    fn module_documents_list_every_internal_operation() {
        let docs = documents().unwrap_or_default();
        assert_eq!(docs.len(), crate::modules::ALL.len() + 1);
        for (def, (name, doc)) in crate::modules::ALL.iter().zip(docs.into_iter().skip(1)) {
            let json = render(&doc).unwrap_or_default();
            let ops = def.operations;
            for op in ops {
                assert_eq!(
                    json.contains(&format!("`{}`", op.name)),
                    reachable_over_http(op.access),
                    "{name}: {} is listed exactly when it is served over HTTP",
                    op.name
                );
            }
            assert!(
                !json.contains("`ensure_admin`"),
                "system-only operations are not listed"
            );
        }
    }
}
