//! `crdgen`: prints the CustomResourceDefinitions of `kafka.strata.dev` as one multi-document
//! YAML stream, or with `--write DIR` writes one file per CRD into `DIR`
//! (`DIR/kafkaclusters.kafka.strata.dev.yaml`, ...). Used to regenerate `crds/` and the chart's
//! copy: `cargo run -p strata-api --bin crdgen -- --write crds`.

use std::path::PathBuf;
use std::process::ExitCode;

use strata_api::crd;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => print_all(),
        [flag, dir] if flag == "--write" => write_all(PathBuf::from(dir)),
        _ => {
            eprintln!("usage: crdgen [--write DIR]");
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

fn print_all() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", crd::all_to_yaml()?);
    Ok(())
}

fn write_all(dir: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&dir)?;
    for definition in crd::all() {
        let path = dir.join(crd::file_name(&definition));
        std::fs::write(&path, crd::to_yaml(&definition)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
