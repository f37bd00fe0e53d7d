//! `pgdrill catalog` and `pgdrill preflight`.

use crate::catalog::render;
use crate::exit::{self, Failure};
use crate::preflight::{Preflight, Target, preflight as decide};
use crate::store::{self as catalog, ReadError};
use crate::store::{Store, StoreError};

use super::{CatalogArgs, Output, PreflightArgs, StoreArgs};

fn open(args: &StoreArgs) -> Result<Store, Failure> {
    let spec = args.spec()?;
    spec.open().map_err(|e| match e {
        StoreError::Location(_) => Failure::usage(e.to_string()),
        other => Failure::error(other.to_string()),
    })
}

fn read_failure(e: ReadError) -> Failure {
    Failure::error(e.to_string())
}

pub async fn catalog(args: CatalogArgs) -> Result<i32, Failure> {
    let store = open(&args.store)?;
    let lineages = catalog::read_catalog(&store, &args.servers)
        .await
        .map_err(read_failure)?;
    match args.output {
        Output::Json => println!("{}", render::to_json(&store.destination_path, &lineages)),
        Output::Table => print!("{}", render::to_table(&store.destination_path, &lineages)),
    }
    super::ok()
}

pub async fn preflight(args: PreflightArgs) -> Result<i32, Failure> {
    let mut target: Target = args.target.parse().map_err(Failure::usage)?;
    if args.backup_id.is_some() {
        target.backup_id = args.backup_id.clone();
    }
    let store = open(&args.store)?;
    let lineage = catalog::CatalogReader::new(&store)
        .read(&args.server)
        .await
        .map_err(read_failure)?;
    let decision = decide(&lineage, &target);
    match args.output {
        Output::Json => {
            let doc = serde_json::json!({
                "schema": "pgdrill.preflight/v1",
                "lineage": args.server,
                "target": target,
                "result": decision,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("serializes")
            );
        }
        Output::Table => match &decision {
            Preflight::Ready(r) => {
                println!(
                    "ready: {} can reach {target} from backup {}",
                    args.server, r.backup_id
                );
                if let Some(wal) = &r.expected_last_wal {
                    println!(
                        "  replay must end in {wal} (LSN {})",
                        r.expected_end_lsn.unwrap_or_default()
                    );
                }
                for n in &r.notes {
                    println!("  note: {n}");
                }
            }
            Preflight::Refused(r) => println!("refused ({}): {}", r.cause, r.message),
        },
    }
    Ok(match decision {
        Preflight::Ready(_) => exit::OK,
        Preflight::Refused(_) => exit::FAIL,
    })
}
