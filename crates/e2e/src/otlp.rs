//! An OTLP/gRPC receiver on loopback for the `telemetry` check: the Trace and Metrics
//! collector services from the opentelemetry-proto types, served by tonic.
//!
//! Every Chroma release that exports anything does so over OTLP/gRPC (the 0.x Python server
//! through `opentelemetry-exporter-otlp-proto-grpc`, the 1.x Rust server through
//! `opentelemetry-otlp`'s tonic exporter; see `docs/chroma-eras.md#telemetry`), so there is no
//! OTLP/HTTP listener: nothing would ever call it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("cannot listen for OTLP on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

/// One span as received: what the check and the latency plot need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceivedSpan {
    pub name: String,
    /// The resource's `service.name`, if it had one.
    pub service_name: Option<String>,
    /// The instrumentation scope (tracer) name.
    pub scope: String,
    pub attributes: BTreeMap<String, String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

impl ReceivedSpan {
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }
}

/// One metric as received (names only: the check asserts that metrics arrive and whose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedMetric {
    pub name: String,
    pub service_name: Option<String>,
    pub scope: String,
}

#[derive(Debug, Default)]
struct Store {
    spans: Vec<ReceivedSpan>,
    metrics: Vec<ReceivedMetric>,
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Store>>);

impl Sink {
    fn with<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        // A panicking exporter thread cannot leave the store half-written (pushes only), so a
        // poisoned lock still holds good data.
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

/// Renders an attribute value the way a person reads it; arrays and maps in a JSON-ish form.
pub fn value_text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(value_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(any_value::Value::KvlistValue(kv)) => {
            format!(
                "{{{}}}",
                kv.values
                    .iter()
                    .map(|k| format!(
                        "{}: {}",
                        k.key,
                        k.value.as_ref().map(value_text).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Some(any_value::Value::BytesValue(b)) => format!("<{} bytes>", b.len()),
        None => String::new(),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(value_text).unwrap_or_default(),
            )
        })
        .collect()
}

fn service_name(r: &Option<Resource>) -> Option<String> {
    r.as_ref()
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .map(value_text)
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        let mut got = Vec::new();
        for rs in &req.resource_spans {
            let service = service_name(&rs.resource);
            for ss in &rs.scope_spans {
                let scope = ss
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for s in &ss.spans {
                    got.push(ReceivedSpan {
                        name: s.name.clone(),
                        service_name: service.clone(),
                        scope: scope.clone(),
                        attributes: attrs(&s.attributes),
                        start_unix_nanos: s.start_time_unix_nano,
                        end_unix_nanos: s.end_time_unix_nano,
                    });
                }
            }
        }
        tracing::debug!(spans = got.len(), "OTLP traces received");
        self.with(|st| st.spans.extend(got));
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        let mut got = Vec::new();
        for rm in &req.resource_metrics {
            let service = service_name(&rm.resource);
            for sm in &rm.scope_metrics {
                let scope = sm
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                got.extend(sm.metrics.iter().map(|m| ReceivedMetric {
                    name: m.name.clone(),
                    service_name: service.clone(),
                    scope: scope.clone(),
                }));
            }
        }
        tracing::debug!(metrics = got.len(), "OTLP metrics received");
        self.with(|st| st.metrics.extend(got));
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver; stops when dropped (or by [`Receiver::stop`]).
pub struct Receiver {
    addr: SocketAddr,
    sink: Sink,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Receiver {
    /// Listens on 127.0.0.1 with a port the kernel picks.
    pub async fn start() -> Result<Receiver, OtlpError> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Listens on `ip` (an address the servers reach the harness at) with a port the kernel picks.
    pub async fn start_on(ip: std::net::IpAddr) -> Result<Receiver, OtlpError> {
        let incoming = tonic::transport::server::TcpIncoming::bind(SocketAddr::from((ip, 0)))
            .map_err(OtlpError::Bind)?;
        let addr = incoming.local_addr().map_err(OtlpError::Bind)?;
        let sink = Sink::default();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            // A collector's OTLP exporter sends gzip unless told otherwise.
            .add_service(
                TraceServiceServer::new(sink.clone())
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .add_service(
                MetricsServiceServer::new(sink.clone())
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            });
        let task = tokio::spawn(server);
        Ok(Receiver {
            addr,
            sink,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://ADDRESS:PORT`: the form both eras' gRPC exporters take (`http` = plaintext).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.sink.with(|s| s.spans.clone())
    }

    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.sink.with(|s| s.metrics.clone())
    }

    /// Polls until `done` holds for what arrived so far, or `limit` passes; returns whether it held.
    pub async fn wait_until(
        &self,
        limit: Duration,
        done: impl Fn(&[ReceivedSpan], &[ReceivedMetric]) -> bool,
    ) -> bool {
        let t = Instant::now();
        loop {
            if self.sink.with(|s| done(&s.spans, &s.metrics)) {
                return true;
            }
            if t.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops listening and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Err(e)) => tracing::warn!("OTLP receiver ended with an error: {e}"),
                Err(e) => tracing::warn!("OTLP receiver task failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
    }

    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![kv(
                "service.name",
                any_value::Value::StringValue(service.into()),
            )],
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn spans_sent_by_a_grpc_exporter_client_arrive_with_service_scope_attributes_and_times() {
        let rx = Receiver::start().await.unwrap();
        let mut client = TraceServiceClient::connect(rx.endpoint()).await.unwrap();
        let span = Span {
            name: "FastAPI.add".into(),
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 4_500,
            attributes: vec![
                kv("collection_id", any_value::Value::StringValue("c1".into())),
                kv("batch", any_value::Value::IntValue(3)),
            ],
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource("chroma-e2e"),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "chromadb.telemetry".into(),
                        ..Default::default()
                    }),
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        client.export(req).await.unwrap();
        let got = rx.spans();
        assert_eq!(got.len(), 1, "{got:?}");
        let s = &got[0];
        assert_eq!(
            (s.name.as_str(), s.service_name.as_deref(), s.scope.as_str()),
            ("FastAPI.add", Some("chroma-e2e"), "chromadb.telemetry")
        );
        assert_eq!(
            s.attributes.get("collection_id").map(String::as_str),
            Some("c1")
        );
        assert_eq!(s.attributes.get("batch").map(String::as_str), Some("3"));
        assert_eq!(s.duration(), Duration::from_nanos(3_500));
        rx.stop().await;
    }

    #[tokio::test]
    async fn metrics_arrive_by_name_and_a_span_without_resource_has_no_service() {
        let rx = Receiver::start().await.unwrap();
        let mut metrics = MetricsServiceClient::connect(rx.endpoint()).await.unwrap();
        metrics
            .export(ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: resource("svc"),
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name: "tokio_active_tasks".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            })
            .await
            .unwrap();
        let mut traces = TraceServiceClient::connect(rx.endpoint()).await.unwrap();
        traces
            .export(ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span {
                            name: "x".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            })
            .await
            .unwrap();
        assert!(
            rx.wait_until(Duration::from_secs(2), |s, m| !s.is_empty()
                && !m.is_empty())
                .await
        );
        assert_eq!(
            rx.metrics(),
            vec![ReceivedMetric {
                name: "tokio_active_tasks".into(),
                service_name: Some("svc".into()),
                scope: String::new()
            }]
        );
        assert_eq!(rx.spans()[0].service_name, None);
    }

    #[tokio::test]
    async fn a_stopped_receiver_refuses_exports() {
        let rx = Receiver::start().await.unwrap();
        let endpoint = rx.endpoint();
        rx.stop().await;
        assert!(TraceServiceClient::connect(endpoint).await.is_err());
    }
}
