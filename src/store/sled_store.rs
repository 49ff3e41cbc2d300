//! The on-disk [`Store`]: sled 0.34, one sled tree per [`Tree`], fsync after every batch.
//!
//! sled recovers a damaged log by keeping its longest valid prefix, which would silently drop
//! acknowledged writes. So every batch also bumps a write counter in the meta tree (in the same
//! transaction), and after each flush the counter is copied to a seal file beside the database. On
//! open, a database whose counter is behind its seal has lost acknowledged writes: that is reported
//! as damage instead of being served.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{Entries, Store, StoreError, Tree, Write};

/// A sled database in a folder.
#[derive(Debug)]
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    trees: [sled::Tree; 4],
}

/// Meta key of the acknowledged-write counter.
const WRITES_KEY: &[u8] = b"acknowledged_writes";

impl SledStore {
    /// Opens (or creates) the database in `path`. Damaged files give
    /// [`StoreError::CorruptFiles`] and are left as they are; sled's own lock keeps a second process out.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptFiles { path: path.display().to_string(), reason };
        // sled 0.34 can panic on some kinds of damage instead of returning an error; a damaged file
        // must give a clear error, so the panic is caught here and reported as damage.
        let opened = catch_unwind(AssertUnwindSafe(|| sled::Config::new().path(path).open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Corruption { .. })) => {
                return Err(corrupt("sled reports corruption".into()));
            }
            Ok(Err(sled::Error::Unsupported(why))) => return Err(corrupt(why)),
            Ok(Err(e)) => return Err(StoreError::Backend(e.to_string())),
            Err(_) => return Err(corrupt("the storage engine could not read it".into())),
        };
        let open_tree = |t: Tree| -> Result<sled::Tree, StoreError> {
            if t == Tree::Meta { Ok((*db).clone()) } else { db.open_tree(t.name()).map_err(backend) }
        };
        let trees =
            [open_tree(Tree::Meta)?, open_tree(Tree::Contacts)?, open_tree(Tree::Calls)?, open_tree(Tree::Settings)?];
        let store = SledStore { path: path.to_owned(), db, trees };
        let sealed = store.read_seal().map_err(|e| corrupt(format!("cannot read its seal file: {e}")))?;
        let written = store.writes()?;
        if written < sealed {
            return Err(corrupt(format!(
                "{} acknowledged writes are missing (the storage log was cut short)",
                sealed - written
            )));
        }
        Ok(store)
    }

    fn seal_path(&self) -> PathBuf {
        self.path.with_extension("seal")
    }

    fn read_seal(&self) -> io::Result<u64> {
        match fs::read_to_string(self.seal_path()) {
            Ok(text) => text.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not a number")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes the seal atomically (temporary file, fsync, rename, fsync of the folder).
    fn write_seal(&self, writes: u64) -> io::Result<()> {
        let seal = self.seal_path();
        let tmp = seal.with_extension("seal.tmp");
        let mut file = File::create(&tmp)?;
        writeln!(file, "{writes}")?;
        file.sync_all()?;
        fs::rename(&tmp, &seal)?;
        if let Some(dir) = seal.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn writes(&self) -> Result<u64, StoreError> {
        match self.tree(Tree::Meta).get(WRITES_KEY).map_err(backend)? {
            None => Ok(0),
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt { what: "write counter".into() }),
        }
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[Tree::ALL.iter().position(|t| *t == tree).expect("every tree is opened")]
    }
}

fn backend(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } => StoreError::Corrupt { what: "sled reports corruption".into() },
        other => StoreError::Backend(other.to_string()),
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn scan(&self, tree: Tree) -> Result<Entries, StoreError> {
        self.tree(tree).iter().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend)).collect()
    }

    fn scan_last(&self, tree: Tree, limit: usize) -> Result<Entries, StoreError> {
        let mut out: Vec<_> = self
            .tree(tree)
            .iter()
            .rev()
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend))
            .collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    fn apply(&self, tree: Tree, batch: Vec<Write>) -> Result<(), StoreError> {
        let next = self.writes()? + 1;
        let counter = (WRITES_KEY.to_vec(), next.to_be_bytes().to_vec());
        if tree == Tree::Meta {
            let mut b = sled::Batch::default();
            apply_to_batch(&mut b, batch);
            b.insert(counter.0, counter.1);
            self.tree(Tree::Meta).apply_batch(b).map_err(backend)?;
        } else {
            let result: Result<(), TransactionError<()>> =
                (self.tree(tree), self.tree(Tree::Meta)).transaction(|(t, meta)| {
                    for w in &batch {
                        match w {
                            Write::Put(k, v) => drop(t.insert(k.as_slice(), v.as_slice())?),
                            Write::Delete(k) => drop(t.remove(k.as_slice())?),
                        }
                    }
                    meta.insert(counter.0.as_slice(), counter.1.as_slice())?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                });
            result.map_err(|e| match e {
                TransactionError::Storage(e) => backend(e),
                TransactionError::Abort(()) => StoreError::Backend("transaction aborted".into()),
            })?;
        }
        // Acknowledged means durable: flush before the caller replies to anyone.
        self.db.flush().map_err(backend)?;
        self.write_seal(next).map_err(|e| StoreError::Backend(format!("cannot write the seal file: {e}")))?;
        Ok(())
    }
}

fn apply_to_batch(b: &mut sled::Batch, batch: Vec<Write>) {
    for w in batch {
        match w {
            Write::Put(k, v) => b.insert(k, v),
            Write::Delete(k) => b.remove(k),
        }
    }
}
