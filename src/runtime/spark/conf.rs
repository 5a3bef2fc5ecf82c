//! The Spark configuration the driver reads (`spark-defaults.conf`, a Java properties file):
//! the Project's tuning properties, then the operator's, which win — where Spark runs, as whom,
//! from which pod template, on which ports, with how many executors of what size.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};

use super::{
    BLOCK_MANAGER_PORT, CONF_DIR, CONNECT_PORT, DRIVER_PORT, EXECUTOR_TEMPLATE, Mode, Spark, UI_PORT,
};
use crate::{
    error::{Error, Result},
    runtime::ValidatedProject,
};

/// Spark's own memory overhead floor (MiB): the pod holds the heap plus at least this.
const MIN_OVERHEAD_MIB: u64 = 384;
/// The smallest heap the operator derives (MiB).
const MIN_HEAP_MIB: u64 = 256;

/// The properties, ordered by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conf(pub BTreeMap<String, String>);

impl Conf {
    /// As a Java properties file: one `key=value` line each. Keys are Spark property names (the
    /// schema allows letters, digits, `.`, `_` and `-`); values cannot hold control characters
    /// (validation refuses them), so no value can start another line, and backslashes are
    /// escaped so that each value reads back as written.
    pub fn render(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\"))).collect()
    }
}

/// The configuration of a Spark project (validated: its memory settings derive).
pub fn conf(project: &ValidatedProject, spark: &Spark, image: &str) -> Conf {
    let mut all = spark.conf.clone();
    let mut set = |key: &str, value: String| drop(all.insert(key.into(), value));
    let name = project.name.as_str();
    set("spark.master", "k8s://https://kubernetes.default.svc:443".into());
    set("spark.submit.deployMode", "client".into());
    set("spark.app.name", name.into());
    set("spark.kubernetes.namespace", project.namespace.clone());
    set("spark.kubernetes.container.image", image.into());
    set("spark.kubernetes.executor.podTemplateFile", format!("{CONF_DIR}/{EXECUTOR_TEMPLATE}"));
    set("spark.kubernetes.executor.podTemplateContainerName", "executor".into());
    set("spark.kubernetes.authenticate.executor.serviceAccountName", executor_service_account(name));
    // Executors get their configuration from the driver; no ConfigMap, no volume claims: the
    // driver's role has no rights on either.
    set("spark.kubernetes.executor.disableConfigMap", "true".into());
    set("spark.kubernetes.driver.ownPersistentVolumeClaim", "false".into());
    set("spark.kubernetes.driver.reusePersistentVolumeClaim", "false".into());
    set("spark.kubernetes.executor.deleteOnTermination", "true".into());
    set("spark.driver.bindAddress", "0.0.0.0".into());
    set("spark.driver.port", DRIVER_PORT.to_string());
    set("spark.driver.blockManager.port", BLOCK_MANAGER_PORT.to_string());
    set("spark.blockManager.port", BLOCK_MANAGER_PORT.to_string());
    set("spark.ui.port", UI_PORT.to_string());
    // The image's HOME (/nonexistent) is not writable.
    set("spark.jars.ivy", "/tmp/.ivy2".into());
    if matches!(spark.mode, Mode::Connect) {
        set("spark.connect.grpc.binding.port", CONNECT_PORT.to_string());
    }
    match spark.executors.dynamic {
        Some((min, max)) => {
            set("spark.dynamicAllocation.enabled", "true".into());
            // Kubernetes has no external shuffle service: executors holding shuffle data are
            // tracked instead.
            set("spark.dynamicAllocation.shuffleTracking.enabled", "true".into());
            set("spark.dynamicAllocation.minExecutors", min.to_string());
            set("spark.dynamicAllocation.maxExecutors", max.to_string());
            set("spark.dynamicAllocation.initialExecutors", spark.executors.instances.to_string());
        }
        None => {
            set("spark.dynamicAllocation.enabled", "false".into());
            set("spark.executor.instances", spark.executors.instances.to_string());
        }
    }
    if let Ok(Some((heap, overhead))) =
        memory(spark.executors.resources.as_ref(), "spec.spark.executors.resources")
    {
        set("spark.executor.memory", format!("{heap}m"));
        set("spark.executor.memoryOverhead", format!("{overhead}m"));
    }
    if let Some(resources) = &spark.executors.resources {
        if let Some(cpu) = resources.requests.as_ref().and_then(|r| r.get("cpu")) {
            set("spark.kubernetes.executor.request.cores", cpu.0.clone());
            set("spark.executor.cores", whole_cores(cpu).to_string());
        }
        if let Some(cpu) = resources.limits.as_ref().and_then(|r| r.get("cpu")) {
            set("spark.kubernetes.executor.limit.cores", cpu.0.clone());
        }
    }
    if let Ok(Some((heap, _))) = memory(spark.driver_resources.as_ref(), "spec.spark.driver.resources") {
        set("spark.driver.memory", format!("{heap}m"));
    }
    Conf(all)
}

/// The executors' ServiceAccount: no token, no API rights.
pub fn executor_service_account(project: &str) -> String {
    format!("{project}-spark-executor")
}

/// Heap and overhead (MiB) of a JVM whose container has the memory `resources` request (or,
/// without a request, limit): the overhead is a tenth, at least 384 MiB, so the pod Spark
/// sizes from both asks for exactly that memory. `None` without memory resources.
pub fn memory(resources: Option<&ResourceRequirements>, field: &str) -> Result<Option<(u64, u64)>> {
    let Some(resources) = resources else { return Ok(None) };
    let quantity = resources
        .requests
        .as_ref()
        .and_then(|r| r.get("memory"))
        .or_else(|| resources.limits.as_ref().and_then(|r| r.get("memory")));
    let Some(quantity) = quantity else { return Ok(None) };
    let too_small = || Error::InvalidSpec {
        reason: "InvalidResources",
        message: format!(
            "{field}: memory {} is too little for a Spark JVM: at least {}Mi (a heap of {MIN_HEAP_MIB}Mi plus Spark's {MIN_OVERHEAD_MIB}Mi overhead)",
            quantity.0,
            MIN_HEAP_MIB + MIN_OVERHEAD_MIB
        ),
    };
    let total = mebibytes(quantity).ok_or_else(too_small)?;
    let overhead = (total / 10).max(MIN_OVERHEAD_MIB);
    match total.checked_sub(overhead) {
        Some(heap) if heap >= MIN_HEAP_MIB => Ok(Some((heap, overhead))),
        _ => Err(too_small()),
    }
}

/// A memory quantity in whole MiB, rounded down; `None` when it is not a quantity.
fn mebibytes(quantity: &Quantity) -> Option<u64> {
    let (negative, mantissa, scale) = crate::controller::apply::quantity_value(&quantity.0)?;
    if negative {
        return None;
    }
    let bytes = if scale >= 0 {
        mantissa / 10u128.checked_pow(scale.unsigned_abs())?
    } else {
        mantissa.checked_mul(10u128.checked_pow(scale.unsigned_abs())?)?
    };
    u64::try_from(bytes >> 20).ok()
}

/// Task slots of an executor: its CPU request rounded down, at least one.
fn whole_cores(cpu: &Quantity) -> u64 {
    match crate::controller::apply::quantity_value(&cpu.0) {
        Some((false, mantissa, scale)) if scale >= 0 => 10u128
            .checked_pow(scale.unsigned_abs())
            .map_or(1, |unit| u64::try_from(mantissa / unit).unwrap_or(1)),
        Some((false, mantissa, scale)) => 10u128
            .checked_pow(scale.unsigned_abs())
            .and_then(|f| mantissa.checked_mul(f))
            .map_or(1, |v| u64::try_from(v).unwrap_or(1)),
        _ => 1,
    }
    .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(memory: &str) -> ResourceRequirements {
        ResourceRequirements {
            requests: Some(BTreeMap::from([("memory".into(), Quantity(memory.into()))])),
            ..ResourceRequirements::default()
        }
    }

    #[test]
    fn memory_splits_into_heap_and_overhead_that_add_up_to_the_request() {
        assert_eq!(memory(Some(&resources("4Gi")), "f").unwrap(), Some((4096 - 409, 409)));
        assert_eq!(memory(Some(&resources("1Gi")), "f").unwrap(), Some((1024 - 384, 384)));
        assert_eq!(memory(Some(&resources("2G")), "f").unwrap(), Some((1907 - 384, 384)));
        assert_eq!(memory(None, "f").unwrap(), None);
        let error = memory(Some(&resources("512Mi")), "spec.spark.executors.resources").unwrap_err();
        assert_eq!(error.reason(), "InvalidResources");
        assert!(error.message().contains("at least 640Mi"), "{}", error.message());
    }

    #[test]
    fn cores_are_whole_task_slots() {
        assert_eq!(whole_cores(&Quantity("500m".into())), 1);
        assert_eq!(whole_cores(&Quantity("2".into())), 2);
        assert_eq!(whole_cores(&Quantity("2500m".into())), 2);
        assert_eq!(whole_cores(&Quantity("1e3".into())), 1000);
    }

    #[test]
    fn values_cannot_start_a_line_and_backslashes_survive() {
        let conf = Conf(BTreeMap::from([("spark.sql.x".into(), r"a\b".into())]));
        assert_eq!(conf.render(), "spark.sql.x=a\\\\b\n");
    }
}
