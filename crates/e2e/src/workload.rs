//! Kubernetes object rules every backend applies the same way: which Service port carries the
//! API and which container port it lands on. The process backend and the cluster
//! port-forward both resolve through here, so they cannot disagree about where traffic goes.

use k8s_openapi::api::core::v1::{Container, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Why a Service's API port resolves to no container port: the Service named, and what would
/// be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("Service {service} has no ports")]
    NoPorts { service: String },
    #[error(
        "Service {service} has {count} ports and none is named `http`; cannot tell which carries the API"
    )]
    Ambiguous { service: String, count: usize },
    #[error("Service {service} targetPort: {source}")]
    Target {
        service: String,
        #[source]
        source: PortRefError,
    },
    #[error("Service {service} port {port} is not a port number")]
    ServicePort { service: String, port: i32 },
}

/// Why a port reference (a number, or a name the containers declare) resolves to no port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRefError {
    #[error("port {0} is not a port number")]
    OutOfRange(i32),
    #[error("port name `{name}` is not declared by container(s) {containers}")]
    Undeclared { name: String, containers: String },
}

/// The Service port that carries the API: the one named `http`, or the only one. Several
/// unnamed-`http` ports are ambiguous and refused rather than guessed.
pub fn api_port(svc: &Service) -> Result<&ServicePort, PortError> {
    let name = svc.metadata.name.as_deref().unwrap_or("?");
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    if let Some(p) = ports.iter().find(|p| p.name.as_deref() == Some("http")) {
        return Ok(p);
    }
    match ports {
        [] => Err(PortError::NoPorts {
            service: name.to_string(),
        }),
        [only] => Ok(only),
        _ => Err(PortError::Ambiguous {
            service: name.to_string(),
            count: ports.len(),
        }),
    }
}

/// The container port a port reference (a Service's targetPort, a probe's port) resolves to
/// in `containers`: a number as it is, a name looked up among their declared ports.
pub fn resolve_port(containers: &[Container], port: &IntOrString) -> Result<u16, PortRefError> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| PortRefError::OutOfRange(*n)),
        IntOrString::String(name) => containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                PortRefError::Undeclared {
                    name: name.clone(),
                    containers: names.join(", "),
                }
            }),
    }
}

/// Where the Service's API port lands among `containers`: (Service port, container port).
pub fn api_target(svc: &Service, containers: &[Container]) -> Result<(u16, u16), PortError> {
    let name = svc.metadata.name.as_deref().unwrap_or("?");
    let p = api_port(svc)?;
    let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
    let to = resolve_port(containers, &target).map_err(|source| PortError::Target {
        service: name.to_string(),
        source,
    })?;
    let from = u16::try_from(p.port).map_err(|_| PortError::ServicePort {
        service: name.to_string(),
        port: p.port,
    })?;
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn svc(ports: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "r-chromadb"}, "spec": {"ports": ports}}),
        )
        .unwrap()
    }

    fn container() -> Container {
        serde_json::from_value(json!({"name": "chromadb", "ports": [{"name": "metrics", "containerPort": 9090}, {"name": "http", "containerPort": 8123}]})).unwrap()
    }

    #[rstest]
    #[case::named_http_port_wins_over_the_first(json!([{"name": "metrics", "port": 9090, "targetPort": "metrics"}, {"name": "http", "port": 8000, "targetPort": "http"}]), (8000, 8123))]
    #[case::a_single_unnamed_port_is_the_api(json!([{"port": 8000, "targetPort": 8123}]), (8000, 8123))]
    #[case::missing_target_port_means_the_port(json!([{"name": "http", "port": 8123}]), (8123, 8123))]
    fn api_target_resolves(#[case] ports: serde_json::Value, #[case] want: (u16, u16)) {
        assert_eq!(api_target(&svc(ports), &[container()]).unwrap(), want);
    }

    #[test]
    fn two_ports_without_http_are_ambiguous() {
        let err = api_target(
            &svc(json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}])),
            &[container()],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("none is named `http`"), "{err}");
    }

    #[test]
    fn an_undeclared_port_name_is_named() {
        let err = api_target(
            &svc(json!([{"name": "http", "port": 8000, "targetPort": "web"}])),
            &[container()],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Service r-chromadb targetPort: port name `web` is not declared by container(s) chromadb"
        );
        let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<PortRefError>());
        assert_eq!(
            source,
            Some(&PortRefError::Undeclared {
                name: "web".into(),
                containers: "chromadb".into()
            }),
            "the container port's error stays the source"
        );
    }
}
