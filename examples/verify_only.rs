//! The benchmark's ceiling: an actix-web endpoint that only checks a GitHub
//! `X-Hub-Signature-256` over the body and answers 202, storing nothing.
//! `scripts/bench-ingest.sh` drives it and portcall with the same load to
//! show what durability costs.
//!
//!     cargo run --release --example verify_only -- 127.0.0.1:8091 SECRET

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8091".into());
    let secret = web::Data::new(args.next().expect("usage: verify_only LISTEN SECRET"));
    HttpServer::new(move || {
        App::new()
            .app_data(secret.clone())
            .app_data(web::PayloadConfig::new(26_214_400))
            .route("/webhooks/{source}", web::post().to(verify))
    })
    .bind(listen)?
    .run()
    .await
}

async fn verify(request: HttpRequest, body: web::Bytes, secret: web::Data<String>) -> HttpResponse {
    let signature = request
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|hex| hex::decode(hex).ok());
    let Some(signature) = signature else {
        return HttpResponse::Unauthorized().finish();
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(&body);
    match mac.verify_slice(&signature) {
        Ok(()) => HttpResponse::Accepted().json(serde_json::json!({"status": "accepted"})),
        Err(_) => HttpResponse::Unauthorized().finish(),
    }
}
