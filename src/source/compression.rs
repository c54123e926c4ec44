//! Compressed source files, recognised by their extension as Spark (Hadoop's codecs) does:
//! `.gz`, `.bz2`, `.zst`, `.deflate` (zlib), `.xz`, and Hadoop's block-framed `.snappy` and
//! `.lz4`. Decompression streams: it runs while a file's parts are read (see
//! [`super::chunks`]), never holding the whole file.
//!
//! Hadoop's block framing (`BlockCompressorStream`), around raw Snappy or LZ4 blocks:
//!
//! ```text
//!   repeat until the end:  u32 BE  length of the block once decompressed
//!                          repeat until that many bytes came out:
//!                              u32 BE  length of a compressed chunk, then the chunk
//! ```

use std::io::Read;

use super::SourceError;

/// How a source file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Not compressed.
    None,
    /// gzip (`.gz`), several members allowed, as `gzip` and Hadoop write them.
    Gzip,
    /// bzip2 (`.bz2`), several streams allowed.
    Bzip2,
    /// Zstandard (`.zst`).
    Zstd,
    /// zlib (`.deflate`, Hadoop's DefaultCodec).
    Deflate,
    /// xz (`.xz`).
    Xz,
    /// Snappy in Hadoop's block framing (`.snappy`).
    HadoopSnappy,
    /// LZ4 in Hadoop's block framing (`.lz4`).
    HadoopLz4,
}

impl Codec {
    /// The codec of a file, by its name's extension (case-insensitive).
    pub fn of(path: &str) -> Result<Codec, SourceError> {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
        Ok(match ext {
            "gz" | "gzip" => Codec::Gzip,
            "bz2" => Codec::Bzip2,
            "zst" | "zstd" => Codec::Zstd,
            "deflate" => Codec::Deflate,
            "xz" => Codec::Xz,
            "snappy" => Codec::HadoopSnappy,
            "lz4" => Codec::HadoopLz4,
            _ => Codec::None,
        })
    }

    /// `raw` decompressed.
    pub fn reader(self, raw: Box<dyn Read + Send>) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Codec::None => raw,
            Codec::Gzip => Box::new(super::gzip::GzipReader::new(raw)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
            Codec::Deflate => Box::new(flate2::read::ZlibDecoder::new(raw)),
            Codec::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(raw)),
            Codec::HadoopSnappy => Box::new(HadoopBlocks::new(raw, Block::Snappy)),
            Codec::HadoopLz4 => Box::new(HadoopBlocks::new(raw, Block::Lz4)),
        })
    }
}

/// The raw block format inside Hadoop's framing.
#[derive(Debug, Clone, Copy)]
enum Block {
    Snappy,
    Lz4,
}

/// A block never decompresses to more than this (Hadoop's buffers are 256 KiB by default); a
/// larger length is a damaged file, not an allocation to make.
const MAX_BLOCK_BYTES: usize = 1 << 30;

/// Reads Hadoop's block-framed Snappy or LZ4 (see the module docs).
struct HadoopBlocks<R> {
    inner: R,
    block: Block,
    /// Decompressed bytes not yet read, from `at`.
    out: Vec<u8>,
    at: usize,
    compressed: Vec<u8>,
}

fn damaged(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("not a Hadoop block-compressed file: {what}"),
    )
}

impl<R: Read> HadoopBlocks<R> {
    fn new(inner: R, block: Block) -> Self {
        HadoopBlocks {
            inner,
            block,
            out: Vec::new(),
            at: 0,
            compressed: Vec::new(),
        }
    }

    /// A big-endian u32, or `None` at a clean end of the input.
    fn length(&mut self) -> std::io::Result<Option<usize>> {
        let mut bytes = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut bytes[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(damaged("cut inside a length")),
                n => got += n,
            }
        }
        Ok(Some(u32::from_be_bytes(bytes) as usize))
    }

    /// Decompress the next block into `out`; false at the end of the input.
    fn next_block(&mut self) -> std::io::Result<bool> {
        let Some(total) = self.length()? else {
            return Ok(false);
        };
        if total > MAX_BLOCK_BYTES {
            return Err(damaged("a block longer than 1 GiB"));
        }
        self.out.clear();
        self.out.resize(total, 0);
        self.at = 0;
        let mut filled = 0;
        while filled < total {
            let len = self
                .length()?
                .ok_or_else(|| damaged("cut before a chunk"))?;
            if len > MAX_BLOCK_BYTES {
                return Err(damaged("a chunk longer than 1 GiB"));
            }
            self.compressed.resize(len, 0);
            self.inner.read_exact(&mut self.compressed)?;
            let target = &mut self.out[filled..];
            let n = match self.block {
                Block::Snappy => snap::raw::Decoder::new()
                    .decompress(&self.compressed, target)
                    .map_err(|e| damaged(&e.to_string()))?,
                Block::Lz4 => lz4_flex::block::decompress_into(&self.compressed, target)
                    .map_err(|e| damaged(&e.to_string()))?,
            };
            if n == 0 {
                return Err(damaged("an empty chunk"));
            }
            filled += n;
        }
        Ok(true)
    }
}

impl<R: Read> Read for HadoopBlocks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
        match codec {
            Codec::None => data.to_vec(),
            Codec::Gzip => {
                // Two members, as concatenated gzip files are.
                let half = data.len() / 2;
                let mut out = Vec::new();
                for piece in [&data[..half], &data[half..]] {
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    e.write_all(piece).unwrap();
                    out.extend(e.finish().unwrap());
                }
                out
            }
            Codec::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Zstd => zstd::stream::encode_all(data, 3).unwrap(),
            Codec::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::HadoopSnappy | Codec::HadoopLz4 => hadoop_blocks(codec, data),
        }
    }

    /// Hadoop's BlockCompressorStream: blocks of up to 64 KiB, each split into chunks of up to
    /// 16 KiB compressed on their own (Hadoop writes one chunk per block unless it overflows).
    fn hadoop_blocks(codec: Codec, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for block in data.chunks(64 * 1024) {
            out.extend((block.len() as u32).to_be_bytes());
            for chunk in block.chunks(16 * 1024) {
                let packed = match codec {
                    Codec::HadoopSnappy => snap::raw::Encoder::new().compress_vec(chunk).unwrap(),
                    _ => lz4_flex::block::compress(chunk),
                };
                out.extend((packed.len() as u32).to_be_bytes());
                out.extend(packed);
            }
        }
        out
    }

    #[test]
    fn every_codec_reads_back_what_was_written() {
        let data: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"v\":{i}}}\n").into_bytes())
            .collect();
        for (name, codec) in [
            ("a.json", Codec::None),
            ("a.json.gz", Codec::Gzip),
            ("A.JSON.GZ", Codec::Gzip),
            ("a.csv.bz2", Codec::Bzip2),
            ("a.zst", Codec::Zstd),
            ("a.txt.deflate", Codec::Deflate),
            ("dir.gz/a.json.xz", Codec::Xz),
            ("a.json.snappy", Codec::HadoopSnappy),
            ("a.csv.lz4", Codec::HadoopLz4),
        ] {
            assert_eq!(Codec::of(name).unwrap(), codec, "{name}");
            let packed = compress(codec, &data);
            let mut out = Vec::new();
            codec
                .reader(Box::new(std::io::Cursor::new(packed)))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{name}");
        }
        assert_eq!(Codec::of("dir.gz/a.json").unwrap(), Codec::None);
    }

    #[test]
    fn a_damaged_hadoop_block_file_is_an_error_not_a_huge_allocation() {
        for bytes in [
            vec![0xff, 0xff, 0xff, 0xff],
            vec![0, 0, 0, 10, 0, 0, 0, 3, 1],
            vec![0, 0],
        ] {
            let mut out = Vec::new();
            let read = Codec::HadoopSnappy
                .reader(Box::new(std::io::Cursor::new(bytes)))
                .unwrap()
                .read_to_end(&mut out);
            assert!(read.is_err());
        }
    }
}
