//! The model table: OpenAI model aliases resolved to Bedrock routes.
//!
//! Loaded from `model-mapping.yaml` into a `DashMap<Box<str>, Arc<Route>>`. Everything a
//! request needs that does not depend on the request (the encoded upstream URIs, the region,
//! the `owned_by` label) is computed here, once, so the hot path does one map read and no
//! string building. A request in flight holds its own `Arc<Route>`, so replacing the table
//! never disturbs it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use dashmap::DashMap;
use serde::Deserialize;

use crate::config::{self, ConfigErrors};
use crate::translate::request::ModelOptions;
use crate::upstream::sigv4::encode_model_id;

/// `created` reported by `/v1/models` for every alias: the table is configuration, not a
/// record of when models were released, so one fixed value keeps the listing stable.
pub const MODELS_CREATED: u64 = 1_700_000_000;

/// The model-mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMapping {
    /// Alias → model entry, listed in file order by `/v1/models` (sorted by alias).
    pub models: BTreeMap<String, ModelEntry>,
}

/// One alias in the model-mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Upstream provider; only `bedrock`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Bedrock model id, inference-profile id, or ARN.
    pub model_id: String,
    /// Region for this model; defaults to `bedrock.region`.
    #[serde(default)]
    pub region: Option<String>,
    /// `owned_by` in `/v1/models`; defaults to the id's provider prefix (`anthropic`).
    #[serde(default)]
    pub owned_by: Option<String>,
    /// What the model supports and its defaults (tool choice, structured output, reasoning,
    /// prompt caching, guardrail); everything off when absent.
    #[serde(default)]
    pub options: ModelOptions,
    /// `chat` or `embedding`; inferred from the model id when absent (Titan Text Embeddings
    /// and Cohere Embed ids are embedding models).
    #[serde(default)]
    pub kind: Option<ModelKind>,
    /// Aliases tried in order when this model fails before answering (throttling, 5xx,
    /// unreachable): another region, inference profile or model. They receive the request as
    /// translated for this model, so list compatible models.
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

/// What a model is served for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// `POST /v1/chat/completions` (Converse).
    Chat,
    /// `POST /v1/embeddings` (InvokeModel).
    Embedding,
}

impl ModelEntry {
    /// A Bedrock entry with only a model id; everything else defaults.
    pub fn new(model_id: impl Into<String>) -> Self {
        Self {
            provider: default_provider(),
            model_id: model_id.into(),
            region: None,
            owned_by: None,
            options: ModelOptions::default(),
            kind: None,
            fallbacks: Vec::new(),
        }
    }
}

fn default_provider() -> String {
    "bedrock".to_owned()
}

/// Everything the gateway needs to send one alias to Bedrock.
#[derive(Debug)]
pub struct Route {
    /// The alias clients send as `model`.
    pub alias: Box<str>,
    /// The Bedrock model id (raw, unencoded).
    pub model_id: Box<str>,
    /// Region used for the host (without an endpoint override) and the SigV4 scope.
    pub region: Box<str>,
    /// `owned_by` for `/v1/models`.
    pub owned_by: Box<str>,
    /// `POST …/model/{encoded id}/converse`.
    pub converse_uri: http::Uri,
    /// `POST …/model/{encoded id}/converse-stream`.
    pub converse_stream_uri: http::Uri,
    /// The `Host` header of the three URIs.
    pub host: http::HeaderValue,
    /// The model's translation options.
    pub options: ModelOptions,
    /// The alias as a metric label value, shared rather than copied per request.
    pub label: crate::metrics::ModelLabel,
    /// Chat or embedding.
    pub kind: ModelKind,
    /// `POST …/model/{encoded id}/invoke` (embedding models).
    pub invoke_uri: http::Uri,
    /// Aliases to try, in order, when this route fails before answering.
    pub fallbacks: Box<[Box<str>]>,
    /// Skips this route for a while after repeated failures.
    pub breaker: crate::upstream::breaker::CircuitBreaker,
    /// This alias's chat metric handles, resolved on first use.
    series: std::sync::OnceLock<crate::metrics::ModelSeries>,
}

impl Route {
    /// This alias's chat metric series in `metrics`, without a label lookup after the first.
    pub fn series(&self, metrics: &crate::metrics::Metrics) -> &crate::metrics::ModelSeries {
        metrics.series(&self.series, &self.label)
    }

    /// Builds a route, computing the encoded upstream URIs.
    pub fn new(
        alias: &str,
        entry: &ModelEntry,
        default_region: &str,
        endpoint: Option<&str>,
    ) -> Result<Self, String> {
        if entry.provider != "bedrock" {
            return Err(format!(
                "provider `{}` is not supported (only `bedrock`)",
                entry.provider
            ));
        }
        if entry.model_id.is_empty() || entry.model_id.len() > 2048 {
            return Err("model_id must be 1 to 2048 characters".to_owned());
        }
        let problems = entry.options.problems();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let region = entry.region.as_deref().unwrap_or(default_region);
        if !config::is_region(region) {
            return Err(format!("region `{region}` is not an AWS region name"));
        }
        let base = match endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://bedrock-runtime.{region}.amazonaws.com"),
        };
        let encoded = encode_model_id(&entry.model_id);
        let uri = |op: &str| -> Result<http::Uri, String> {
            format!("{base}/model/{encoded}/{op}")
                .parse()
                .map_err(|e| format!("cannot build the upstream URL: {e}"))
        };
        let converse_uri = uri("converse")?;
        let host = crate::upstream::host_header(&converse_uri)
            .ok_or_else(|| format!("the upstream URL {converse_uri} has no usable host"))?;
        let owned_by = entry
            .owned_by
            .clone()
            .unwrap_or_else(|| owner_from_id(&entry.model_id).to_owned());
        Ok(Self {
            alias: alias.into(),
            label: std::sync::Arc::from(alias),
            kind: entry.kind.unwrap_or(
                if crate::translate::embeddings::EmbeddingFamily::of(&entry.model_id).is_some() {
                    ModelKind::Embedding
                } else {
                    ModelKind::Chat
                },
            ),
            invoke_uri: uri("invoke")?,
            fallbacks: entry.fallbacks.iter().map(|a| a.as_str().into()).collect(),
            breaker: crate::upstream::breaker::CircuitBreaker::default(),
            series: std::sync::OnceLock::new(),
            model_id: entry.model_id.as_str().into(),
            region: region.into(),
            owned_by: owned_by.into(),
            converse_uri,
            host,
            converse_stream_uri: uri("converse-stream")?,
            options: entry.options.clone(),
        })
    }
}

/// `anthropic` from `anthropic.claude…`, `us.anthropic.claude…` or an ARN's resource part.
fn owner_from_id(id: &str) -> &str {
    let resource = id.rsplit('/').next().unwrap_or(id);
    let mut parts = resource.split('.');
    let first = parts.next().unwrap_or("");
    let owner = match first {
        "us" | "eu" | "apac" | "global" | "us-gov" | "jp" | "au" | "ca" => parts.next().unwrap_or(first),
        _ => first,
    };
    if owner.is_empty() || owner.contains(':') {
        "bedrock"
    } else {
        owner
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Aliases that did not exist before.
    pub added: usize,
    /// Aliases present before and after (their routes replaced).
    pub kept: usize,
    /// Aliases no longer in the file.
    pub removed: usize,
}

/// Watches the model-mapping file for changes by polling its modification time and size (the
/// size catches a rewrite within the same clock tick). A change is reported once the file has
/// stayed the same for one more poll, so an editor's partial writes are not loaded.
#[derive(Debug)]
pub struct FileWatch {
    path: std::path::PathBuf,
    loaded: Option<(std::time::SystemTime, u64)>,
    pending: Option<(std::time::SystemTime, u64)>,
}

impl FileWatch {
    /// Starts watching `path`, taking its current state as loaded.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            loaded: modified(path),
            pending: None,
        }
    }

    /// Polls once: `true` when the file changed and has settled since the last load.
    pub fn poll(&mut self) -> bool {
        let now = modified(&self.path);
        if now == self.loaded {
            self.pending = None;
            return false;
        }
        if self.pending == now {
            self.loaded = now;
            self.pending = None;
            return true;
        }
        self.pending = now;
        false
    }
}

fn modified(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Alias → route, shared by every request.
#[derive(Debug, Default)]
pub struct ModelTable {
    /// foldhash instead of SipHash: clients only look names up (they cannot add keys to
    /// collide), and the lookup is on every request.
    routes: DashMap<Box<str>, Arc<Route>, foldhash::fast::RandomState>,
}

impl ModelTable {
    /// Builds a table from a parsed mapping, collecting every bad entry.
    pub fn from_mapping(
        mapping: &ModelMapping,
        default_region: &str,
        endpoint: Option<&str>,
    ) -> Result<Self, ConfigErrors> {
        let table = Self::default();
        let mut problems = Vec::new();
        for (alias, entry) in &mapping.models {
            if alias.is_empty() || alias.len() > 256 {
                problems.push(format!("models.{alias}: alias must be 1 to 256 characters"));
                continue;
            }
            match Route::new(alias, entry, default_region, endpoint) {
                Ok(route) => {
                    table.routes.insert(alias.as_str().into(), Arc::new(route));
                }
                Err(e) => problems.push(format!("models.{alias}: {e}")),
            }
        }
        for (alias, entry) in &mapping.models {
            for fallback in &entry.fallbacks {
                if fallback == alias {
                    problems.push(format!(
                        "models.{alias}.fallbacks: `{fallback}` is the model itself"
                    ));
                } else if !mapping.models.contains_key(fallback) {
                    problems.push(format!(
                        "models.{alias}.fallbacks: `{fallback}` is not in the model table"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(table)
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// Reads, parses and validates a model-mapping file.
    pub fn load(path: &Path, default_region: &str, endpoint: Option<&str>) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
        let mapping: ModelMapping = serde_yaml::from_str(&text)
            .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
        Self::from_mapping(&mapping, default_region, endpoint)
    }

    /// Looks an alias up: one map read, no allocation.
    pub fn get(&self, alias: &str) -> Option<Arc<Route>> {
        self.routes.get(alias).map(|r| Arc::clone(r.value()))
    }

    /// The route whose Bedrock model id is `model_id`, if any (a scan: the table is small, and
    /// only native requests that name a raw id need it).
    pub fn find_by_model_id(&self, model_id: &str) -> Option<Arc<Route>> {
        self.routes
            .iter()
            .find(|r| &*r.model_id == model_id)
            .map(|r| Arc::clone(r.value()))
    }

    /// Every route, sorted by alias.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        let mut all: Vec<Arc<Route>> = self.routes.iter().map(|r| Arc::clone(r.value())).collect();
        all.sort_by(|a, b| a.alias.cmp(&b.alias));
        all
    }

    /// Makes this table equal to `fresh`, entry by entry: new aliases appear, removed ones go,
    /// changed ones are replaced. Requests in flight keep the `Arc<Route>` they resolved, and a
    /// lookup during the swap finds either the old or the new route, never nothing, for an
    /// alias present in both.
    pub fn replace_with(&self, fresh: ModelTable) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        for entry in fresh.routes.iter() {
            match self.routes.insert(entry.key().clone(), Arc::clone(entry.value())) {
                None => summary.added += 1,
                Some(_) => summary.kept += 1,
            }
        }
        self.routes.retain(|alias, _| {
            let keep = fresh.routes.contains_key(alias);
            if !keep {
                summary.removed += 1;
            }
            keep
        });
        summary
    }

    /// Number of aliases.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no alias is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> ModelEntry {
        ModelEntry::new(id)
    }

    #[test]
    fn uris_are_encoded_once_at_load() {
        let r = Route::new(
            "haiku",
            &entry("anthropic.claude-3-haiku-20240307-v1:0"),
            "us-east-1",
            None,
        )
        .unwrap();
        assert_eq!(
            r.converse_uri.to_string(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        assert_eq!(
            r.converse_uri.path(),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        assert_eq!(r.owned_by.as_ref(), "anthropic");
    }

    #[test]
    fn inference_profile_arn_slash_becomes_one_segment() {
        let arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
        let mut e = entry(arn);
        e.region = Some("us-west-2".into());
        let r = Route::new("p", &e, "us-east-1", None).unwrap();
        assert_eq!(
            r.converse_stream_uri.path(),
            "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        );
        assert_eq!(
            r.converse_stream_uri.host(),
            Some("bedrock-runtime.us-west-2.amazonaws.com")
        );
        assert_eq!(r.owned_by.as_ref(), "anthropic");
    }

    #[test]
    fn endpoint_override_is_used_verbatim() {
        let r = Route::new(
            "n",
            &entry("amazon.nova-lite-v1:0"),
            "us-east-1",
            Some("http://127.0.0.1:9000/"),
        )
        .unwrap();
        assert_eq!(
            r.converse_uri.to_string(),
            "http://127.0.0.1:9000/model/amazon.nova-lite-v1%3A0/converse"
        );
    }

    #[test]
    fn bad_entries_are_all_reported() {
        let mapping: ModelMapping = serde_yaml::from_str(
            "models:\n  a:\n    model_id: x\n    region: Bad\n  b:\n    provider: openai\n    model_id: y\n  c:\n    model_id: amazon.nova-lite-v1:0\n",
        )
        .unwrap();
        let errs = ModelTable::from_mapping(&mapping, "us-east-1", None).unwrap_err();
        assert_eq!(errs.0.len(), 2, "{errs}");
        assert!(errs.to_string().contains("models.a"));
        assert!(errs.to_string().contains("models.b"));
    }

    #[test]
    fn model_options_are_carried_into_the_route_and_checked_at_load() {
        let mapping: ModelMapping = serde_yaml::from_str(
            "models:\n  c:\n    model_id: anthropic.claude-3-haiku-20240307-v1:0\n    options:\n      supports_named_tool_choice: true\n      reasoning: {thinking_budgets: {low: 2048}}\n",
        )
        .unwrap();
        let t = ModelTable::from_mapping(&mapping, "us-east-1", None).unwrap();
        let route = t.get("c").unwrap();
        assert!(route.options.supports_named_tool_choice);
        assert_eq!(route.options.reasoning.thinking_budgets.len(), 1);

        let mapping: ModelMapping = serde_yaml::from_str(
            "models:\n  c:\n    model_id: x\n    options:\n      reasoning: {thinking_budgets: {low: 10}}\n",
        )
        .unwrap();
        let errs = ModelTable::from_mapping(&mapping, "us-east-1", None).unwrap_err();
        assert!(
            errs.to_string()
                .contains("models.c: options.reasoning.thinking_budgets.low"),
            "{errs}"
        );
        assert!(
            serde_yaml::from_str::<ModelMapping>("models:\n  c:\n    model_id: x\n    options: {nope: 1}\n")
                .is_err()
        );
    }

    #[test]
    fn replace_with_adds_replaces_and_removes() {
        let table = |yaml: &str| {
            let mapping: ModelMapping = serde_yaml::from_str(yaml).unwrap();
            ModelTable::from_mapping(&mapping, "us-east-1", None).unwrap()
        };
        let live = table(
            "models:\n  a:\n    model_id: amazon.nova-lite-v1:0\n  b:\n    model_id: amazon.nova-pro-v1:0\n",
        );
        let held = live.get("a").unwrap();
        let summary = live.replace_with(table(
            "models:\n  a:\n    model_id: amazon.nova-micro-v1:0\n  c:\n    model_id: meta.llama3-8b-instruct-v1:0\n",
        ));
        assert_eq!(
            summary,
            ReloadSummary {
                added: 1,
                kept: 1,
                removed: 1
            }
        );
        assert_eq!(&*live.get("a").unwrap().model_id, "amazon.nova-micro-v1:0");
        assert!(live.get("b").is_none());
        assert!(live.get("c").is_some());
        assert_eq!(
            &*held.model_id, "amazon.nova-lite-v1:0",
            "a route in use is not changed under it"
        );
    }

    #[test]
    fn file_watch_reports_a_change_once_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, "a").unwrap();
        let mut watch = FileWatch::new(&path);
        assert!(!watch.poll());
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!watch.poll(), "first sight of a change: wait for it to settle");
        assert!(watch.poll(), "unchanged since: load it");
        assert!(!watch.poll(), "reported once");
    }

    #[test]
    fn lookup_and_listing() {
        let mapping: ModelMapping =
            serde_yaml::from_str("models:\n  z:\n    model_id: amazon.nova-lite-v1:0\n  a:\n    model_id: meta.llama3-8b-instruct-v1:0\n")
                .unwrap();
        let t = ModelTable::from_mapping(&mapping, "us-east-1", None).unwrap();
        assert_eq!(t.get("a").unwrap().owned_by.as_ref(), "meta");
        assert!(t.get("nope").is_none());
        let aliases: Vec<_> = t.routes().iter().map(|r| r.alias.to_string()).collect();
        assert_eq!(aliases, ["a", "z"]);
    }
}
