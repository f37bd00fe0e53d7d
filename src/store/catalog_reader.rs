//! Reads lineages from an object store into a [`Listing`], concurrently and streaming.

use std::io::Read;

use futures::{StreamExt, TryStreamExt, stream};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::{FailureKind, Store, classify};
use crate::catalog::lineage::{LineageCatalog, Listing};
use crate::catalog::wal::{WalFile, parse_wal_key};

/// How many listing or read requests run at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{what} at {endpoint}: {kind}: {detail}", kind = .kind.describe())]
    Store {
        what: String,
        endpoint: String,
        kind: FailureKind,
        detail: String,
    },
    #[error(
        "no barman-cloud lineage under {destination}: expected <serverName>/base/ or <serverName>/wals/ folders"
    )]
    NoLayout { destination: String },
    #[error("lineage {server:?} not found under {destination}: it holds no base/ or wals/ objects")]
    NoSuchLineage { server: String, destination: String },
}

/// The first line of an error, with any query string (SAS tokens) cut from URLs.
fn scrub(err: &object_store::Error) -> String {
    let line = err
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let line = line
        .split("<?xml")
        .next()
        .unwrap_or_default()
        .trim_end_matches([' ', ':'])
        .to_string();
    line.split_whitespace()
        .map(|w| {
            if w.contains("://") {
                w.split('?').next().unwrap_or(w).to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub struct CatalogReader<'a> {
    store: &'a Store,
}

impl<'a> CatalogReader<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self { store }
    }

    fn path(&self, rel: &str) -> Path {
        let p = &self.store.prefix;
        if p.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{p}/{rel}"))
        }
    }

    fn fail(&self, what: String, err: &object_store::Error) -> ReadError {
        ReadError::Store {
            what,
            endpoint: self.store.endpoint.clone(),
            kind: classify(err),
            detail: scrub(err),
        }
    }

    /// Folder names directly under `rel` (with a trailing-slash delimiter listing).
    /// Whether the store still answers for a lineage: one listing of its folder.
    pub async fn reachable(&self, server: &str) -> Result<(), ReadError> {
        self.folders(server).await.map(|_| ())
    }

    async fn folders(
        &self,
        rel: &str,
    ) -> Result<(Vec<String>, Vec<object_store::ObjectMeta>), ReadError> {
        let path = self.path(rel);
        let listing = self
            .store
            .inner
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| self.fail(format!("listing {}", self.display(rel)), &e))?;
        let names = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        Ok((names, listing.objects))
    }

    fn display(&self, rel: &str) -> String {
        format!(
            "{}/{rel}",
            self.store.destination_path.trim_end_matches('/')
        )
    }

    /// Every serverName folder that holds `base/` or `wals/`.
    pub async fn lineages(&self) -> Result<Vec<String>, ReadError> {
        let (folders, _) = self.folders("").await?;
        let checks = stream::iter(folders)
            .map(|name| async move {
                let (sub, _) = self.folders(&name).await?;
                Ok::<_, ReadError>(
                    sub.iter()
                        .any(|s| s == "base" || s == "wals")
                        .then_some(name),
                )
            })
            .buffered(CONCURRENCY);
        let found: Vec<String> = checks
            .try_filter_map(|n| async move { Ok(n) })
            .try_collect()
            .await?;
        if found.is_empty() {
            return Err(ReadError::NoLayout {
                destination: self.store.destination_path.clone(),
            });
        }
        Ok(found)
    }

    async fn read_text(&self, rel: &str) -> Result<Option<Vec<u8>>, ReadError> {
        match self.store.inner.get(&self.path(rel)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| self.fail(format!("reading {}", self.display(rel)), &e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail(format!("reading {}", self.display(rel)), &e)),
        }
    }

    /// Lists and reads one lineage.
    pub async fn read(&self, server: &str) -> Result<LineageCatalog, ReadError> {
        self.ensure_lineage(server).await?;
        let (base, wals) = (format!("{server}/base"), format!("{server}/wals"));
        let ((backups, _), (hash_dirs, root_objects)) =
            tokio::try_join!(self.folders(&base), self.folders(&wals))?;
        let mut listing = Listing {
            server_name: server.to_string(),
            ..Default::default()
        };
        listing.backup_infos = self.backup_infos(server, &backups).await;
        listing.backup_folders = backups;
        let wals_prefix = format!("{}/", self.path(&wals));
        let history_names = list_wal_root(&wals_prefix, &root_objects, &mut listing);
        self.list_hash_folders(server, &wals_prefix, hash_dirs, &mut listing)
            .await?;
        listing.histories = self.histories(server, history_names).await;
        Ok(LineageCatalog::build(listing))
    }

    /// A lineage is a serverName folder holding `base/` or `wals/`.
    async fn ensure_lineage(&self, server: &str) -> Result<(), ReadError> {
        let (top, _) = self.folders(server).await?;
        if !top.iter().any(|s| s == "base" || s == "wals") {
            return Err(ReadError::NoSuchLineage {
                server: server.to_string(),
                destination: self.store.destination_path.clone(),
            });
        }
        Ok(())
    }

    /// The `backup.info` text of each backup folder that has one, or why it could not be read.
    async fn backup_infos(
        &self,
        server: &str,
        backups: &[String],
    ) -> Vec<(String, Result<String, String>)> {
        stream::iter(backups.iter().cloned())
            .map(|id| async move {
                let rel = format!("{server}/base/{id}/backup.info");
                let text = match self.read_text(&rel).await {
                    Ok(Some(bytes)) => Some(
                        String::from_utf8(bytes)
                            .map_err(|_| "backup.info is not UTF-8 text".to_string()),
                    ),
                    Ok(None) => None,
                    Err(e) => Some(Err(e.to_string())),
                };
                text.map(|t| (id, t))
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(|x| async move { x })
            .collect()
            .await
    }

    /// Lists every segment in the hash folders (`wals/<timeline+log>/`) into `listing`.
    async fn list_hash_folders(
        &self,
        server: &str,
        wals_prefix: &str,
        hash_dirs: Vec<String>,
        listing: &mut Listing,
    ) -> Result<(), ReadError> {
        // A hash folder holds no subfolders, so a delimiter listing returns the same objects;
        // servers that prune by delimiter (s3s-fs, file trees) then read only that folder.
        let mut dirs = stream::iter(hash_dirs)
            .map(|dir| async move {
                let (_, metas) = self.folders(&format!("{server}/wals/{dir}")).await?;
                Ok::<_, ReadError>(metas)
            })
            .buffer_unordered(CONCURRENCY);
        while let Some(metas) = dirs.next().await {
            for meta in metas? {
                let Some(rel) = relative(wals_prefix, &meta) else {
                    continue;
                };
                match parse_wal_key(&rel) {
                    Some(file) => listing
                        .wal
                        .push((file, Some(crate::time::from_chrono(meta.last_modified)))),
                    None => listing.unrecognized.push(rel),
                }
            }
        }
        Ok(())
    }

    /// Reads the `.history` files, decompressed.
    async fn histories(
        &self,
        server: &str,
        history_names: Vec<HistoryName>,
    ) -> Vec<(u32, Result<String, String>)> {
        stream::iter(history_names)
            .map(|(tl, rel, compression): HistoryName| async move {
                let text = match self.read_text(&format!("{server}/wals/{rel}")).await {
                    Ok(Some(bytes)) => decompress(&bytes, compression),
                    Ok(None) => Err("vanished while reading".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (tl, text)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }
}

/// A `.history` file at the `wals/` root: its timeline, key under `wals/` and compression.
type HistoryName = (u32, String, Option<&'static str>);

/// The key of `meta` under `wals/`.
fn relative(wals_prefix: &str, meta: &object_store::ObjectMeta) -> Option<String> {
    meta.location
        .as_ref()
        .strip_prefix(wals_prefix)
        .map(str::to_string)
}

/// Sorts the objects at the `wals/` root into `listing`: history files (returned, to be read)
/// and anything else, which is not WAL.
fn list_wal_root(
    wals_prefix: &str,
    root_objects: &[object_store::ObjectMeta],
    listing: &mut Listing,
) -> Vec<HistoryName> {
    let mut history_names = Vec::new();
    for meta in root_objects {
        let Some(rel) = relative(wals_prefix, meta) else {
            continue;
        };
        match parse_wal_key(&rel) {
            Some(WalFile::History {
                timeline,
                compression,
            }) => {
                history_names.push((timeline, rel.clone(), compression));
                listing.wal.push((
                    WalFile::History {
                        timeline,
                        compression,
                    },
                    Some(crate::time::from_chrono(meta.last_modified)),
                ));
            }
            _ => listing.unrecognized.push(rel),
        }
    }
    history_names
}

fn decompress(bytes: &[u8], compression: Option<&str>) -> Result<String, String> {
    let raw = match compression {
        None => bytes.to_vec(),
        Some("gz") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            out
        }
        Some(other) => {
            return Err(format!(
                "{other} compression is not supported for history files"
            ));
        }
    };
    String::from_utf8(raw).map_err(|_| "not UTF-8 text".to_string())
}

/// Reads the named lineages, or every lineage under the path when `servers` is empty.
pub async fn read_catalog(
    store: &Store,
    servers: &[String],
) -> Result<Vec<LineageCatalog>, ReadError> {
    let reader = CatalogReader::new(store);
    let names = if servers.is_empty() {
        reader.lineages().await?
    } else {
        servers.to_vec()
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(reader.read(&name).await?);
    }
    Ok(out)
}
