//! `crdgen`: renders the CustomResourceDefinitions of `kafka.strata.dev`, the one source of every
//! CRD file in the repository.
//!
//! ```text
//! crdgen                      all CRDs as one multi-document YAML stream on stdout
//! crdgen --write DIR          DIR/<name>.yaml per CRD plus DIR/Kustomization listing them
//! crdgen --write-chart DIR    DIR/<name>.yaml per CRD, annotated `helm.sh/resource-policy: keep`
//! crdgen --write-all [ROOT]   both copies of the repository at ROOT (default `.`):
//!                             ROOT/crds (--write) and ROOT/charts/strata-operator/crds (--write-chart)
//! ```
//!
//! Regenerate after changing the types, from the repository root:
//! `cargo run -p strata-api --bin crdgen -- --write-all`. The kustomization lets
//! `deploy/operator` include `../../crds` (kustomize refuses single files outside its root but
//! accepts a directory with a kustomization). It is named `Kustomization`, the one name kustomize
//! accepts without a `.yaml` extension, so `kubectl apply -f crds/` (which reads only `.yaml`,
//! `.yml` and `.json` files) still applies just the CRDs. The chart copy carries the keep annotation so that
//! CRDs, and with them every custom resource, survive `helm uninstall` also for users who
//! `helm template` the chart instead of letting Helm install its `crds/` directory (which Helm
//! never deletes anyway).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use strata_api::crd;

/// Where `--write-all` puts the plain copy, relative to the repository root.
const CRDS_DIR: &str = "crds";
/// Where `--write-all` puts the chart's copy, relative to the repository root.
const CHART_CRDS_DIR: &str = "charts/strata-operator/crds";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => print_all(),
        ["--write", dir] => write_plain(Path::new(dir)),
        ["--write-chart", dir] => write_chart(Path::new(dir)),
        ["--write-all"] => write_all(Path::new(".")),
        ["--write-all", root] => write_all(Path::new(root)),
        _ => {
            eprintln!("usage: crdgen [--write DIR | --write-chart DIR | --write-all [ROOT]]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crdgen: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print_all() -> Result<()> {
    print!("{}", crd::all_to_yaml()?);
    Ok(())
}

fn write_all(root: &Path) -> Result<()> {
    if !root.join("crates/strata-api").is_dir() {
        return Err(format!(
            "{} is not the repository root (no crates/strata-api); run from the root or pass it",
            root.display()
        )
        .into());
    }
    write_plain(&root.join(CRDS_DIR))?;
    write_chart(&root.join(CHART_CRDS_DIR))
}

/// File name of the kustomization in the plain copy; see the module docs for why not `.yaml`.
const KUSTOMIZATION: &str = "Kustomization";

/// The plain copy: exactly [`crd::to_yaml`] per CRD, and a kustomization listing the files.
fn write_plain(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    for definition in crd::all() {
        let name = crd::file_name(&definition);
        write(&dir.join(&name), &crd::to_yaml(&definition)?)?;
        files.push(name);
    }
    write(&dir.join(KUSTOMIZATION), &kustomization(&files))
}

/// The chart's copy: the plain rendering plus the annotation that keeps the CRD on uninstall.
fn write_chart(dir: &Path) -> Result<()> {
    for mut definition in crd::all() {
        let name = crd::file_name(&definition);
        keep_on_uninstall(&mut definition);
        write(&dir.join(&name), &crd::to_yaml(&definition)?)?;
    }
    Ok(())
}

fn keep_on_uninstall(definition: &mut CustomResourceDefinition) {
    definition
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("helm.sh/resource-policy".to_owned(), "keep".to_owned());
}

fn kustomization(files: &[String]) -> String {
    let mut out = String::from(crd::HEADER);
    out.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n");
    for file in files {
        out.push_str(&format!("- {file}\n"));
    }
    out
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
