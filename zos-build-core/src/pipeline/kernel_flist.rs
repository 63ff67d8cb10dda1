//! The kernel flist: what Zero-OS nodes boot a kernel from on the hub.

use super::Derive;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `boot/boot.yaml` of a kernel flist: the kernel to boot, and not the
/// node's default flist.
pub const BOOT_YAML: &str = "kernel: /kernel.efi\nnodefault: true\n";

/// Makes a kernel flist's archive from a kernel: a `.tar.gz` holding
/// `kernel.efi` (the kernel, mode 0644) and `boot/boot.yaml`
/// ([`BOOT_YAML`]), as the old service made them.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelFlist;

impl Derive for KernelFlist {
    fn describe(&self) -> String {
        "the kernel flist (kernel.efi, boot/boot.yaml)".into()
    }

    fn derive(&self, artifact: &Path, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("kernel-flist.tar.gz");
        let file = std::fs::File::create(&path)?;
        let gzip = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gzip);
        // Never follow a link: the kernel is the regular file the build left.
        let metadata = std::fs::symlink_metadata(artifact)?;
        if !metadata.file_type().is_file() {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file",
                artifact.display()
            )));
        }
        let mtime = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let mut header = tar::Header::new_gnu();
        header.set_size(metadata.len());
        header.set_mode(0o644);
        header.set_mtime(mtime);
        tar.append_data(&mut header, "kernel.efi", std::fs::File::open(artifact)?)?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(mtime);
        tar.append_data(&mut header, "boot/", std::io::empty())?;
        let mut header = tar::Header::new_gnu();
        header.set_size(BOOT_YAML.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        tar.append_data(&mut header, "boot/boot.yaml", BOOT_YAML.as_bytes())?;
        let mut gzip = tar.into_inner()?;
        gzip.flush()?;
        gzip.finish()?.sync_all()?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn holds_the_kernel_and_its_boot_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz.efi");
        std::fs::write(&kernel, b"MZ kernel").unwrap();
        let path = KernelFlist
            .derive(&kernel, &dir.path().join("out"))
            .unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
            std::fs::File::open(path).unwrap(),
        ));
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            found.push((name, text));
        }
        assert_eq!(
            found,
            [
                ("kernel.efi".to_string(), "MZ kernel".to_string()),
                ("boot/".to_string(), String::new()),
                ("boot/boot.yaml".to_string(), BOOT_YAML.to_string()),
            ]
        );
        std::os::unix::fs::symlink(&kernel, dir.path().join("link")).unwrap();
        assert!(KernelFlist
            .derive(&dir.path().join("link"), dir.path())
            .is_err());
    }
}
