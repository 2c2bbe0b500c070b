//! Every shipped configuration file loads and validates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ai_gateway::config::Config;
use ai_gateway::routing::ModelTable;

#[test]
fn every_file_in_configs_loads_and_validates() {
    let dir = support::repo_path("configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "model-mapping.yaml" {
            let table = ModelTable::load(&path, "us-east-1", None).unwrap_or_else(|e| panic!("{name}:\n{e}"));
            for alias in [
                "claude-3-haiku",
                "claude-3-sonnet",
                "claude-3-opus",
                "claude-3-5-sonnet",
                "amazon-titan-text-express",
                "llama2-70b",
                "mistral-8x7b",
                "claude-sonnet-4",
                "nova-lite",
                "llama3-8b",
            ] {
                assert!(table.get(alias).is_some(), "{alias} missing from the model table");
            }
        } else {
            let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{name}:\n{e}"));
            config.validate().unwrap_or_else(|e| panic!("{name}:\n{e}"));
        }
        seen += 1;
    }
    assert!(seen >= 4);
}

#[test]
fn gateway_yaml_documents_the_defaults() {
    let shipped = Config::from_file(&support::repo_path("configs/gateway.yaml")).unwrap();
    let defaults = Config::default();
    assert_eq!(shipped.listen, defaults.listen);
    assert_eq!(shipped.models_watch_ms, defaults.models_watch_ms);
    assert_eq!(shipped.admin_listen, defaults.admin_listen);
    assert_eq!(shipped.limits.max_body_bytes, defaults.limits.max_body_bytes);
    assert_eq!(shipped.limits.max_event_bytes, defaults.limits.max_event_bytes);
    assert_eq!(shipped.timeouts.idle_ms, defaults.timeouts.idle_ms);
    assert_eq!(
        shipped.timeouts.response_headers_ms,
        defaults.timeouts.response_headers_ms
    );
    assert_eq!(
        shipped.bedrock.pool_max_idle_per_host,
        defaults.bedrock.pool_max_idle_per_host
    );
    assert_eq!(shipped.bedrock.http2, defaults.bedrock.http2);
    assert_eq!(
        shipped.bedrock.http2_max_streams,
        defaults.bedrock.http2_max_streams
    );
    assert_eq!(shipped.bedrock.ca_file, defaults.bedrock.ca_file);
    assert_eq!(
        shipped.bedrock.retries.max_retries,
        defaults.bedrock.retries.max_retries
    );
    assert_eq!(
        shipped.bedrock.retries.budget_ms,
        defaults.bedrock.retries.budget_ms
    );
    assert_eq!(shipped.passthrough.enabled, defaults.passthrough.enabled);
    assert_eq!(
        shipped.passthrough.allow_raw_model_ids,
        defaults.passthrough.allow_raw_model_ids
    );
}

#[test]
fn gateway_yaml_documents_the_security_defaults() {
    let shipped = Config::from_file(&support::repo_path("configs/gateway.yaml")).unwrap();
    let defaults = Config::default();
    assert_eq!(shipped.auth.enabled, defaults.auth.enabled);
    assert_eq!(shipped.auth.keys_file, defaults.auth.keys_file);
    assert_eq!(shipped.auth.reload_interval_ms, defaults.auth.reload_interval_ms);
    assert_eq!(shipped.auth.session_ttl_secs, defaults.auth.session_ttl_secs);
    assert_eq!(shipped.auth.totp_max_failures, defaults.auth.totp_max_failures);
    assert_eq!(shipped.auth.totp_lockout_secs, defaults.auth.totp_lockout_secs);
    assert_eq!(shipped.auth.totp_issuer, defaults.auth.totp_issuer);
    assert_eq!(shipped.tls.cert_file, defaults.tls.cert_file);
    assert_eq!(shipped.tls.client_ca_file, defaults.tls.client_ca_file);
    assert_eq!(shipped.audit.output, defaults.audit.output);
    assert_eq!(shipped.audit.queue_capacity, defaults.audit.queue_capacity);
    assert_eq!(shipped.limits.max_header_bytes, defaults.limits.max_header_bytes);
    assert_eq!(shipped.limits.max_connections, defaults.limits.max_connections);
    assert_eq!(shipped.timeouts.client_idle_ms, defaults.timeouts.client_idle_ms);
}
