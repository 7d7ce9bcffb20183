//! `GET /api/v1/openapi.json`: public, OpenAPI 3.1, and complete.

use serde_json::Value;

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends! {
    async fn the_openapi_document_is_served_without_a_token_and_lists_every_route(db: TestDb) {
        let app = TestApp::spawn(db).await;
        let response = reqwest::get(app.url("/api/v1/openapi.json")).await.expect("request sent");
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let document: Value = response.json().await.expect("JSON");

        assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", document["openapi"]);
        assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        let paths = document["paths"].as_object().expect("paths");
        for route in portcall::http::api::ROUTES {
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &paths
                .get(route.path)
                .unwrap_or_else(|| panic!("{} is not in the document", route.path))[&method];
            assert!(operation.is_object(), "{} {} is not in the document", route.method, route.path);
            match route.scope {
                Some(scope) => assert_eq!(
                    operation["security"],
                    serde_json::json!([{"bearer": [scope.as_str()]}]),
                    "{} {}", route.method, route.path
                ),
                None => assert!(operation.get("security").is_none(), "{} {}", route.method, route.path),
            }
            if route.scope.is_some() {
                for status in ["401", "403"] {
                    assert!(operation["responses"][status].is_object(), "{} {} lacks {status}", route.method, route.path);
                }
            }
        }
        // And nothing the router does not serve.
        let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(operations, portcall::http::api::ROUTES.len());
        app.finish().await;
    }
}
