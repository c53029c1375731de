//! `swagger/openapi.json` is the generated document, committed so readers and tools can see the
//! API without building. This fails when the code and the file disagree: run `make openapi`.

#[test]
fn committed_openapi_document_is_current() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/swagger/openapi.json"))
            .expect("swagger/openapi.json exists");
    let generated = chorus::http::docs::openapi_json();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "swagger/openapi.json is stale: run `make openapi`"
    );
}

#[test]
fn document_lists_every_rest_route() {
    let doc: serde_json::Value =
        serde_json::from_str(&chorus::http::docs::openapi_json()).expect("valid JSON");
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/users",
        "/api/sessions",
        "/api/users/me",
        "/api/users/{id}",
        "/api/contacts",
        "/api/contacts/{user_id}",
        "/api/communities",
        "/api/communities/search",
        "/api/communities/{id}/members",
        "/api/communities/{id}/members/me",
        "/api/attachments",
        "/uploads/{file}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the document");
    }
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
}
