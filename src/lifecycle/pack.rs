//! Many new blobs as one Git pack: each envelope deflated by the worker
//! that made it, then the whole written through libgit2's pack writer
//! (which indexes it into `objects/pack/`). Thousands of loose objects
//! would cost a file each; a pack builder would search for deltas between
//! ciphertexts, which never pay.

use std::io::Write as _;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use sha1::{Digest, Sha1};

use crate::repo::{Oid, Repo, RepoError};

/// One blob, ready for a pack: its id and its pack entry (header and
/// deflated content).
#[derive(Debug)]
pub(crate) struct PackedBlob {
    pub id: Oid,
    entry: Vec<u8>,
}

const BLOB: u8 = 3;

impl PackedBlob {
    pub(crate) fn new(data: &[u8]) -> Result<PackedBlob, RepoError> {
        let id = Oid::hash_object(git2::ObjectType::Blob, data)?;
        // Object header: type and size, seven bits at a time after the
        // first four.
        let mut entry = Vec::with_capacity(data.len() / 2 + 16);
        let mut size = data.len();
        let mut byte = (BLOB << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            entry.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        entry.push(byte);
        let mut encoder = ZlibEncoder::new(entry, Compression::fast());
        encoder.write_all(data).map_err(io_error)?;
        let entry = encoder.finish().map_err(io_error)?;
        Ok(PackedBlob { id, entry })
    }
}

fn io_error(e: std::io::Error) -> RepoError {
    RepoError::from(git2::Error::from_str(&format!("cannot write a pack: {e}")))
}

/// Write `blobs` into the repository as one pack, and make its object
/// store see them at once.
pub(crate) fn write(repo: &Repo, blobs: &[PackedBlob]) -> Result<(), RepoError> {
    if blobs.is_empty() {
        return Ok(());
    }
    let odb = repo.raw().odb()?;
    let mut writer = odb.packwriter()?;
    let mut hash = Sha1::new();
    let mut put = |bytes: &[u8]| -> Result<(), RepoError> {
        hash.update(bytes);
        writer.write_all(bytes).map_err(io_error)
    };
    put(b"PACK")?;
    put(&2u32.to_be_bytes())?;
    put(&(blobs.len() as u32).to_be_bytes())?;
    for blob in blobs {
        put(&blob.entry)?;
    }
    let trailer = hash.finalize();
    writer.write_all(&trailer).map_err(io_error)?;
    writer.commit()?;
    drop(writer);
    // The index update that follows checks every blob it names.
    odb.refresh()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_of_blobs_reads_back_as_written() {
        let tmp = tempfile::tempdir().unwrap();
        git2::Repository::init(tmp.path()).unwrap();
        let repo = Repo::discover(tmp.path()).unwrap();
        let datas: Vec<Vec<u8>> = [0usize, 1, 15, 16, 127, 128, 5000, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 31 % 251) as u8).collect())
            .collect();
        let blobs: Vec<PackedBlob> = datas.iter().map(|d| PackedBlob::new(d).unwrap()).collect();
        write(&repo, &blobs).unwrap();
        for (data, blob) in datas.iter().zip(&blobs) {
            assert_eq!(&repo.blob(blob.id).unwrap(), data);
            assert_eq!(
                blob.id,
                Oid::hash_object(git2::ObjectType::Blob, data).unwrap()
            );
        }
        let packs = std::fs::read_dir(tmp.path().join(".git/objects/pack"))
            .unwrap()
            .count();
        assert_eq!(packs, 2, "one pack and its index");
    }
}
