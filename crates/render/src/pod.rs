//! The StatefulSet's pod: containers, volumes and mounts, probes and claim templates.

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PodSpec, Probe, Volume, VolumeMount,
};

use crate::objects::Rendered;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl Rendered {
    /// The StatefulSet's pod template spec.
    pub fn pod_spec(&self) -> Option<&PodSpec> {
        self.statefulset()?.spec.as_ref()?.template.spec.as_ref()
    }

    pub fn init_containers(&self) -> &[Container] {
        self.pod_spec()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
    }

    pub fn init_container(&self, name: &str) -> Option<&Container> {
        self.init_containers().iter().find(|c| c.name == name)
    }

    pub fn volumes(&self) -> &[Volume] {
        self.pod_spec()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default()
    }

    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes().iter().find(|v| v.name == name)
    }

    /// The StatefulSet's `volumeClaimTemplates`.
    pub fn pvc_templates(&self) -> &[PersistentVolumeClaim] {
        self.statefulset()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.volume_claim_templates.as_deref())
            .unwrap_or_default()
    }

    /// The mount of `container` that holds `path` (the longest mount path that is `path` or
    /// a parent of it).
    pub fn mount_for<'a>(&self, container: &'a Container, path: &str) -> Option<&'a VolumeMount> {
        container
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| {
                let mp = m.mount_path.trim_end_matches('/');
                path == m.mount_path
                    || path == mp
                    || path.strip_prefix(mp).is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|m| m.mount_path.len())
    }

    /// Whether a mount's name is a claim template (a PVC) rather than a pod volume.
    pub fn is_claim(&self, volume_name: &str) -> bool {
        self.pvc_templates()
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(volume_name))
    }

    /// A container's probes, those that are set.
    pub fn probes<'a>(&self, container: &'a Container) -> Vec<(ProbeKind, &'a Probe)> {
        [
            (ProbeKind::Liveness, container.liveness_probe.as_ref()),
            (ProbeKind::Readiness, container.readiness_probe.as_ref()),
            (ProbeKind::Startup, container.startup_probe.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.map(|p| (k, p)))
        .collect()
    }

    /// Every container of the pod, init containers first.
    pub fn all_containers(&self) -> Vec<&Container> {
        let Some(spec) = self.pod_spec() else {
            return Vec::new();
        };
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .collect()
    }
}
