//! Before any drill: the source resolved, the archive read and the drills planned, for one
//! scenario.

use crate::catalog::LineageCatalog;
use crate::exit::Failure;
use crate::preflight::Preflight;
use crate::scenario::Loaded;
use crate::scenario::plan::{DrillPlan, plan, select_lineages};
use crate::scenario::types::BackendKind;
use crate::source::{ResolvedSource, resolve};
use crate::store::{CatalogReader, Store};
use crate::target::TargetRequest;

/// Everything a run needs from the archive, for one scenario.
pub struct Prepared {
    pub loaded: Loaded,
    pub source: ResolvedSource,
    pub store: Store,
    pub catalogs: Vec<LineageCatalog>,
    pub drills: Vec<DrillPlan>,
}

/// Which drills of the scenarios to plan: only some lineages, or one target instead of the
/// scenario's.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub lineages: Vec<String>,
    pub target: Option<TargetRequest>,
}

/// A run id: the start time and a few bits that differ between processes.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    format!(
        "{}-{:04x}",
        now.strftime("%Y%m%dT%H%M%S"),
        (now.subsec_nanosecond() as u32 ^ std::process::id()) & 0xffff
    )
}

/// Reads the archive for one scenario and plans its drills; `id_prefix` keeps drill ids unique
/// across the scenarios of one run.
pub async fn prepare(
    loaded: Loaded,
    selection: &Selection,
    id_prefix: &str,
    kube: &mut Option<kube::Client>,
) -> Result<Prepared, Failure> {
    check_target(&loaded, selection.target.as_ref())?;
    if loaded.source_needs_kubernetes() && kube.is_none() {
        *kube = Some(crate::k8s::client().await.map_err(Failure::error)?);
    }
    let source = resolve(&loaded, kube.as_ref())
        .await
        .map_err(Failure::error)?;
    let store = source
        .spec
        .open()
        .map_err(|e| Failure::error(format!("{}: {e}", loaded.path.display())))?;
    let catalogs = read_selected(&loaded, &store, &selection.lineages).await?;
    let drills = plan(&loaded, &catalogs, id_prefix, selection.target.as_ref());
    Ok(Prepared {
        loaded,
        source,
        store,
        catalogs,
        drills,
    })
}

/// `--target baseline:NAME` needs the scenario's baseline to be that one.
fn check_target(loaded: &Loaded, target: Option<&TargetRequest>) -> Result<(), Failure> {
    let Some(TargetRequest::Baseline { name, .. }) = target else {
        return Ok(());
    };
    match &loaded.baseline {
        Some(b) if &b.name == name => Ok(()),
        Some(b) => Err(Failure::usage(format!(
            "--target baseline:{name}: {} holds baseline {:?}",
            loaded.path.display(),
            b.name
        ))),
        None => Err(Failure::usage(format!(
            "--target baseline:{name}: {} has no checks.baseline",
            loaded.path.display()
        ))),
    }
}

/// The catalogs of the scenario's lineages, narrowed to `only` when given.
async fn read_selected(
    loaded: &Loaded,
    store: &Store,
    only: &[String],
) -> Result<Vec<LineageCatalog>, Failure> {
    let reader = CatalogReader::new(store);
    let available = reader
        .lineages()
        .await
        .map_err(|e| Failure::error(e.to_string()))?;
    let mut names = select_lineages(loaded, &available).map_err(Failure::usage)?;
    if !only.is_empty() {
        if let Some(bad) = only.iter().find(|l| !names.contains(l)) {
            return Err(Failure::usage(format!(
                "--lineage {bad}: not among the scenario's lineages ({})",
                names.join(", ")
            )));
        }
        names.retain(|n| only.contains(n));
    }
    let mut catalogs = Vec::new();
    for n in &names {
        catalogs.push(
            reader
                .read(n)
                .await
                .map_err(|e| Failure::error(e.to_string()))?,
        );
    }
    Ok(catalogs)
}

impl Prepared {
    /// The catalog a drill was planned from.
    pub fn catalog_of(&self, d: &DrillPlan) -> &LineageCatalog {
        self.catalogs
            .iter()
            .find(|c| c.server_name == d.lineage)
            .expect("planned from these catalogs")
    }

    /// For `backend: cnpg`, the manifests of a drill preflight lets through, safety-checked.
    pub fn manifests(&self, d: &DrillPlan) -> Result<Option<String>, Failure> {
        let (BackendKind::Cnpg, Preflight::Ready(ready)) =
            (self.loaded.scenario.backend, &d.preflight)
        else {
            return Ok(None);
        };
        let spec = crate::cnpg::plan::drill_spec(
            &self.loaded,
            &self.source.block,
            self.source.cluster.as_ref(),
            self.catalog_of(d),
            d,
            ready,
            jiff::Timestamp::now(),
        )
        .map_err(Failure::usage)?;
        let manifests = crate::cnpg::plan::safe_manifests(&spec).map_err(Failure::error)?;
        Ok(Some(manifests.to_yaml()))
    }
}
