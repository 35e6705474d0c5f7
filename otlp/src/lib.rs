//! `ws-otlp`: ws's audit records sent to an OpenTelemetry collector as
//! OTLP/HTTP log records (protobuf or JSON), configured by the standard
//! `OTEL_*` variables.
//!
//! The local audit log stays the record; export is a copy that must never
//! hold a session up. [`Exporter`] takes records through a bounded queue
//! (a full queue drops and counts, never waits), a background thread sends
//! them in batches with retries and backoff, and at the session's end it
//! waits for the last batch only while the collector is answering.
//! [`export_all`] re-sends a finished session's log, synchronously.
//!
//! [`journal`] writes the same records as structured journal entries.
//!
//! The crate reads no environment itself: [`Config::from_vars`] takes a
//! lookup function, so the caller decides where the variables come from.

mod encode;
mod exporter;
mod http;
pub mod journal;

use std::time::Duration;

pub use encode::{Line, SCOPE, SessionContext, attributes, record_type, request};
pub use exporter::{Exporter, Report, Sink, export_all};
pub use http::Endpoint;

/// The OTLP/HTTP body encoding (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    HttpProtobuf,
    HttpJson,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The full URL records are POSTed to (`…/v1/logs`).
    pub endpoint: Endpoint,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    /// `service.name` first, then `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<(String, String)>,
    /// For one request, connection to answer.
    pub timeout: Duration,
    /// Records waiting to be sent; more are dropped (and counted).
    pub max_queue: usize,
    pub max_batch: usize,
    /// How long a batch waits to fill before it is sent.
    pub delay: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value}: {why}")]
    Bad { var: &'static str, value: String, why: String },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the collector answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status { status: u16, body: String },
}

impl ExportError {
    /// Whether the same request may succeed later (OTLP/HTTP: a failed
    /// connection, 429, 502, 503, 504; no other status is retried).
    pub fn retryable(&self) -> bool {
        match self {
            ExportError::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            ExportError::Tls(_) => false,
            _ => true,
        }
    }
}

/// The variables this crate understands (the caller registers them).
pub const VARS: [&str; 14] = [
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
    "OTEL_BLRP_MAX_QUEUE_SIZE",
    "OTEL_BLRP_SCHEDULE_DELAY",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
];

impl Config {
    /// The configuration the OpenTelemetry variables describe, or `None`
    /// when export is off: no endpoint set, or `OTEL_SDK_DISABLED=true`.
    /// `host` is added as `host.name` unless the resource names one.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, host: Option<&str>) -> Result<Option<Config>, ConfigError> {
        let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let bad = |var: &'static str, value: &str, why: &str| ConfigError::Bad {
            var,
            value: value.to_owned(),
            why: why.to_owned(),
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        // A signal's own endpoint is used as it is; the general one gets
        // the signal's path appended (the specification's rule).
        let endpoint = if let Some(v) = var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") {
            Endpoint::parse(&v).map_err(|e| bad("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &v, &e))?
        } else if let Some(v) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Endpoint::parse(&v).map_err(|e| bad("OTEL_EXPORTER_OTLP_ENDPOINT", &v, &e))?.join("v1/logs")
        } else {
            return Ok(None);
        };
        let (pvar, pval) = match var("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL") {
            Some(v) => ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", Some(v)),
            None => ("OTEL_EXPORTER_OTLP_PROTOCOL", var("OTEL_EXPORTER_OTLP_PROTOCOL")),
        };
        let protocol = match pval.as_deref() {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("http/json") => Protocol::HttpJson,
            Some(other) => {
                return Err(bad(
                    pvar,
                    other,
                    "ws sends OTLP over HTTP only: use http/protobuf or http/json (a collector's OTLP/HTTP port is 4318)",
                ));
            }
        };
        let mut headers = Vec::new();
        for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"] {
            if let Some(v) = var(name) {
                // A header may be a credential: the message never echoes one.
                let pairs = parse_pairs(&v).map_err(|_| {
                    bad(name, "…", "expected KEY=VALUE pairs separated by commas, values percent-encoded")
                })?;
                for (k, val) in pairs {
                    if !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b)) {
                        return Err(bad(name, "…", &format!("{k:?} is not a header name")));
                    }
                    if val.bytes().any(|b| b.is_ascii_control()) {
                        return Err(bad(name, "…", &format!("the value of {k} holds a control character")));
                    }
                    // The logs-specific variable overrides the general one.
                    headers.retain(|(old, _): &(String, String)| !old.eq_ignore_ascii_case(&k));
                    headers.push((k, val));
                }
            }
        }
        let mut resource = Vec::new();
        if let Some(v) = var("OTEL_RESOURCE_ATTRIBUTES") {
            resource = parse_pairs(&v).map_err(|e| bad("OTEL_RESOURCE_ATTRIBUTES", &v, &e))?;
        }
        // OTEL_SERVICE_NAME wins over a service.name in the attributes; ws
        // is the name when neither gives one.
        let service = var("OTEL_SERVICE_NAME")
            .or_else(|| resource.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| "ws".into());
        resource.retain(|(k, _)| k != "service.name");
        resource.insert(0, ("service.name".into(), service));
        if !resource.iter().any(|(k, _)| k == "service.version") {
            resource.push(("service.version".into(), env!("CARGO_PKG_VERSION").into()));
        }
        if let Some(h) = host.filter(|_| !resource.iter().any(|(k, _)| k == "host.name")) {
            resource.push(("host.name".into(), h.to_owned()));
        }
        let millis = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| bad(name, &v, "expected a whole number of milliseconds")),
            }
        };
        let timeout = match var("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT") {
            Some(_) => millis("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", 10_000)?,
            None => millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
        };
        let count = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad(name, &v, "expected a positive number")),
            }
        };
        let max_queue = count("OTEL_BLRP_MAX_QUEUE_SIZE", 2048)?;
        Ok(Some(Config {
            endpoint,
            protocol,
            headers,
            resource,
            timeout: Duration::from_millis(timeout.max(1)),
            max_queue,
            max_batch: count("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512)?.min(max_queue),
            delay: Duration::from_millis(millis("OTEL_BLRP_SCHEDULE_DELAY", 1000)?),
        }))
    }
}

/// `k=v,k2=v2` with percent-encoded values (W3C Baggage, as the
/// specification has it for headers and resource attributes).
pub fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| format!("{item:?} is not KEY=VALUE"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("{item:?} has no key"));
        }
        out.push((k.to_owned(), percent_decode(v.trim())?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| format!("bad percent escape in {s:?}"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} decodes to invalid UTF-8"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Option<Config>, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(|n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()), Some("box"))
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert!(config(&[]).unwrap().is_none());
        assert!(config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap().is_none());
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")];
        assert!(config(&on).unwrap().is_none());
    }

    #[test]
    fn the_general_endpoint_gets_the_logs_path_the_specific_one_does_not() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap().unwrap();
        assert_eq!(c.endpoint.to_string(), "http://c:4318/v1/logs");
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://d:9/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint.to_string(), "http://d:9/custom");
        assert_eq!(c.protocol, Protocol::HttpJson);
    }

    #[test]
    fn grpc_is_refused_with_the_fix() {
        let e = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && msg.contains("http/protobuf"), "{msg}");
    }

    #[test]
    fn resource_and_headers() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=agents,k8s.pod.name=p%2C1, deployment.environment=prod"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc,x-tenant=a"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "X-Tenant=b"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.resource[0], ("service.name".into(), "agents".into()));
        assert!(c.resource.contains(&("k8s.pod.name".into(), "p,1".into())));
        assert!(c.resource.contains(&("host.name".into(), "box".into())));
        assert_eq!(c.headers, [("Authorization".into(), "Bearer abc".into()), ("X-Tenant".into(), "b".into())]);
        let named = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=agents"),
            ("OTEL_SERVICE_NAME", "fleet"),
        ]);
        assert_eq!(named.unwrap().unwrap().resource[0].1, "fleet");
        let default = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]).unwrap().unwrap();
        assert_eq!(default.resource[0].1, "ws");
    }

    #[test]
    fn a_header_that_would_split_the_request_is_refused() {
        for h in ["X=a%0D%0AInjected: 1", "Bad Name=1", "novalue"] {
            let e = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_HEADERS", h)]);
            assert!(e.is_err(), "{h}");
            // The header's value may be a credential: never echoed.
            let msg = e.unwrap_err().to_string();
            assert!(!msg.contains("a%0D") && !msg.contains("novalue"), "{msg}");
        }
    }
}
