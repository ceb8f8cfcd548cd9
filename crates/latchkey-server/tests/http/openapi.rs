//! The OpenAPI document (`/openapi.json`) and the docs page (`/docs`), and
//! the drift test: the router answers exactly the paths and methods the
//! document lists, and routes are registered only where their descriptions
//! are (`routes!` with `#[utoipa::path]`).

use std::path::Path;

use latchkey_testkit::TestServer;
use reqwest::Method;
use serde_json::Value;

async fn document(s: &TestServer) -> Value {
    let r = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.expect("json")
}

#[tokio::test]
async fn the_document_describes_the_api_and_its_security() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        latchkey_server::openapi_document(),
        "the served document is the router's"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client_basic"]["scheme"], "basic");

    let paths = doc["paths"].as_object().expect("paths");
    for form_route in ["/oauth/token", "/oauth/revoke", "/oauth/introspect"] {
        let content = &paths[form_route]["post"]["requestBody"]["content"];
        assert!(
            content.get("application/x-www-form-urlencoded").is_some(),
            "{form_route} takes a form: {content}"
        );
    }
    assert_eq!(
        paths["/v1/me"]["get"]["security"],
        serde_json::json!([{"bearer": []}])
    );
    assert_eq!(
        paths["/v1/revocations"]["get"]["security"],
        serde_json::json!([{"client_basic": []}])
    );
    // Every error answer has the one error shape, but for answers listed
    // here as "METHOD /path STATUS" (e.g. a probe's own report).
    const OWN_SHAPES: &[&str] = &[];
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            for (status, response) in op["responses"].as_object().expect("responses") {
                let answer = format!("{} {path} {status}", method.to_uppercase());
                if (status.starts_with('4') || status.starts_with('5'))
                    && !OWN_SHAPES.contains(&answer.as_str())
                {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // An optional body: absent, or the object (not `null`).
    let sign_out = &paths["/v1/sign-out"]["post"]["requestBody"];
    assert!(
        sign_out.get("required").is_none_or(|r| r == false),
        "{sign_out}"
    );
    assert_eq!(
        sign_out["content"]["application/json"]["schema"],
        serde_json::json!({"$ref": "#/components/schemas/SignOutBody"})
    );
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .map(|op| op["operationId"].as_str().expect("operationId"))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["required"],
        serde_json::json!(["error", "error_description"])
    );
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary_under_a_strict_policy() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/docs")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self';"),
        "{csp}"
    );
    let page = r.text().await.expect("text");
    assert!(!page.contains("http:") && !page.contains("https:") && !page.contains("//cdn"));

    // Everything the page links to is here.
    let linked: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("/docs/"))
        .collect();
    assert!(linked.len() >= 4, "{linked:?}");
    for link in linked {
        let r = s.http.get(s.url(link)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{link}");
    }
    let init = s
        .http
        .get(s.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("request");
    let init = init.text().await.expect("text");
    assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");

    let missing = s
        .http
        .get(s.url("/docs/nothing.js"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
}

/// Whether the router itself (not a handler) refused `method` on `path`:
/// the fallbacks' 404 "no such route" and 405.
async fn router_refuses(s: &TestServer, method: &Method, path: &str) -> bool {
    let r = s
        .http
        .request(method.clone(), s.url(path))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    status == 405 || (status == 404 && body["error_description"] == "no such route")
}

#[tokio::test]
async fn the_router_answers_exactly_what_the_document_lists() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    assert!(router_refuses(&s, &Method::GET, "/v1/not-a-route").await);
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    for (template, item) in doc["paths"].as_object().expect("paths") {
        // A path parameter's example where there is one (a handler's own
        // 404 for a made-up file would look like the router's).
        let mut path = template.clone();
        for op in item.as_object().expect("path item").values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let value = p["example"].as_str().unwrap_or("x");
                path = path.replace(&format!("{{{}}}", p["name"].as_str().expect("name")), value);
            }
        }
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            assert_eq!(
                router_refuses(&s, method, &path).await,
                !documented,
                "{method} {path}: documented {documented}"
            );
        }
    }
}

/// A route can only be added without its description by registering it
/// directly on a router; the route table registers each with `routes!`
/// (which needs the handler's `#[utoipa::path]`). So no source file of the
/// server may register a route any other way.
#[test]
fn routes_are_registered_only_with_their_descriptions() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let registers = [
                    ".route(",
                    ".route_service(",
                    ".nest(",
                    ".nest_service(",
                    "axum::routing",
                ]
                .iter()
                .any(|p| code.contains(p));
                if registers {
                    offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes registered without an OpenAPI description (use `#[utoipa::path]` on the \
         handler and `.routes(routes!(handler))` in routes/mod.rs):\n{}",
        offenders.join("\n")
    );
}
