//! A log of payloads beside a database: each row keeps the offset of its payload's frame, appended
//! in `seq` order to segment files, so that SQLite keeps only a small row per item (the lake's
//! event texts, the relay's pending payloads). Copying a payload through SQLite's WAL and again
//! into the database file by the checkpoint cost more than this log's one write.
//!
//! # On-disk format
//!
//! `<dir>/<first seq>.log` (zero-padded to 20 digits) holds the payloads of items from that seq up
//! to the next segment's first seq. A segment is a sequence of frames:
//!
//! ```text
//! [payload length: u32 LE][check: u32 LE][seq: i64 LE][payload]
//! ```
//!
//! where the check is the low half of the payload's xxHash64 seeded with the seq. An item's
//! segment is the one with the largest first seq not above its seq. A segment is closed once it
//! passes [`SEGMENT_BYTES`]; frames of one commit never span two segments. Segments are given
//! their blocks ahead of the frames (8 MiB at a time); zeros past the
//! last frame end a segment.
//!
//! # Durability and crash recovery
//!
//! The owner appends a commit's frames and syncs them *before* it commits the database
//! transaction that records them, so every committed row finds its frame. A crash in between
//! leaves frames past the last committed seq; [`LogWriter::open`] cuts the log back to the last
//! committed seq (and at the first torn or corrupt frame) before anything is written. The frames
//! of a commit that failed after they were synced stay, unread, and later commits' frames follow
//! them; the owner must not hand out their seqs again while it runs, or a reader that read ahead
//! could take one frame for another.
//!
//! Segments whose every item is no longer needed are deleted whole
//! ([`LogWriter::forget_through`]); the newest segment always stays.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

/// A segment past this size is closed; the next commit starts a new one.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Bytes a segment is given blocks for at a time, ahead of its frames.
const PREALLOCATE: u64 = 8 << 20;
/// Bytes before a frame's payload.
const HEADER: usize = 16;
/// The largest payload a frame may have (an audit event is at most 256 KB); a larger length in a
/// header is damage.
const MAX_PAYLOAD: usize = 16 << 20;
/// Bytes a reader fetches at once (more when a frame is larger).
const READ_AHEAD: usize = 256 << 10;

/// The frame at `offset` of segment `first` is not item `seq`'s.
fn not_here(dir: &Path, first: i64, seq: i64, offset: u64) -> io::Error {
    corrupt(format!("the log frame at {offset} of segment {first} in {} is not item {seq}'s", dir.display()))
}

/// Damage found in the log: a frame that is not what its place says.
fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn check(seq: i64, payload: &[u8]) -> u32 {
    twox_hash::XxHash64::oneshot(seq as u64, payload) as u32
}

/// The frames of one commit, in a buffer kept from one commit to the next.
///
/// A new buffer per commit grew by doubling to a few MiB, and each growth that large took fresh
/// pages the kernel had to zero: 13.7 % of the relay's spool writer and 16.2 % of the lake's writer
/// in a profile of the bench (session 20).
#[derive(Debug, Default)]
pub struct Frames(Vec<u8>);

impl Frames {
    /// The capacity kept between commits; a buffer grown past it by a larger commit is given back
    /// when the next one starts.
    pub const KEPT_BYTES: usize = 16 << 20;

    /// Empties the buffer for a new commit's frames.
    pub fn start(&mut self) {
        if self.0.capacity() > Self::KEPT_BYTES {
            self.0 = Vec::new();
        } else {
            self.0.clear();
        }
    }

    /// Appends the frame of item `seq`.
    pub fn push(&mut self, seq: i64, payload: &[u8]) {
        push_frame(&mut self.0, seq, payload);
    }

    /// The bytes of the frames pushed since [`Frames::start`].
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes the frames pushed since [`Frames::start`] take.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no frame was pushed since [`Frames::start`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes the buffer holds room for.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

/// Appends the frame of item `seq` to `buf`.
pub fn push_frame(buf: &mut Vec<u8>, seq: i64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a payload is far below 4 GiB");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&check(seq, payload).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// A frame's header read from `bytes`: (payload length, check, seq).
fn header(bytes: &[u8]) -> (usize, u32, i64) {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (word(0) as usize, word(4), i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")))
}

fn segment_path(dir: &Path, first: i64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// The first seqs of the segments in `dir`, in order (none when the directory does not exist).
fn segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut firsts = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(firsts),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        if let Some(first) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok()) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segment being written.
struct Open {
    file: File,
    /// Where the next frame goes.
    len: u64,
    /// Bytes given blocks up front ([`preallocate`]); the file's size.
    allocated: u64,
}

/// The log's single writer (the store's writer thread owns it).
pub struct LogWriter {
    dir: PathBuf,
    /// First seqs of the segments, in order; the last is the open one.
    segments: Vec<i64>,
    /// Bytes of the closed segments.
    closed_bytes: u64,
    /// The open segment (none before the first item).
    file: Option<Open>,
    /// The size past which the open segment is closed ([`SEGMENT_BYTES`]).
    segment_bytes: u64,
}

impl LogWriter {
    /// Opens the log in `dir` (creating it), cutting it back to the items committed in the
    /// database (`committed`: the highest seq there, 0 for none).
    pub fn open(dir: &Path, committed: i64) -> io::Result<LogWriter> {
        fs::create_dir_all(dir)?;
        let mut segments = segments(dir)?;
        let mut changed = false;
        // Segments begun by a commit that never reached the database.
        while segments.last().is_some_and(|&first| first > committed) {
            let first = segments.pop().expect("checked");
            tracing::info!(segment = first, committed, "Removing a log segment past the last commit.");
            fs::remove_file(segment_path(dir, first))?;
            changed = true;
        }
        let mut closed_bytes = 0;
        for &first in segments.iter().rev().skip(1) {
            closed_bytes += fs::metadata(segment_path(dir, first))?.len();
        }
        let file = match segments.last() {
            Some(&first) => {
                let path = segment_path(dir, first);
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                let (end, size) = (valid_end(&file, committed)?, file.metadata()?.len());
                if end < size {
                    // Past `end`: zeros of the preallocation, or frames cut off by the crash.
                    file.set_len(end)?;
                    file.sync_all()?;
                }
                Some(Open { file, len: end, allocated: end })
            }
            None => None,
        };
        if changed {
            sync_dir(dir)?;
        }
        Ok(LogWriter { dir: dir.to_owned(), segments, closed_bytes, file, segment_bytes: SEGMENT_BYTES })
    }

    /// Where the next commit's frames start: the open segment's end. Starts a new segment (named
    /// `next_seq`, the seq of the commit's first item) when there is none or it is full.
    pub fn begin(&mut self, next_seq: i64) -> io::Result<u64> {
        if self.file.as_ref().is_none_or(|open| open.len >= self.segment_bytes) {
            if let Some(full) = self.file.take() {
                // What was preallocated past its last frame goes back.
                full.file.set_len(full.len)?;
                self.closed_bytes += full.len;
            }
            let path = segment_path(&self.dir, next_seq);
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
            sync_dir(&self.dir)?;
            self.segments.push(next_seq);
            self.file = Some(Open { file, len: 0, allocated: 0 });
        }
        Ok(self.file.as_ref().map_or(0, |open| open.len))
    }

    /// Appends frames (built at [`LogWriter::begin`]'s offset) and syncs them. On failure the
    /// segment is cut back, so the next commit writes at the same offset (with other seqs: the
    /// writer never hands out a seq twice while it runs, so a reader never takes one frame for
    /// another).
    pub fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        let Some(open) = self.file.as_mut() else {
            return Err(corrupt("the log was written before it was begun".into()));
        };
        let end = open.len + frames.len() as u64;
        let written = (|| {
            if end > open.allocated {
                let step = PREALLOCATE.max(end - open.allocated);
                preallocate(&open.file, open.allocated, step)?;
                open.allocated += step;
            }
            open.file.write_all_at(frames, open.len)?;
            open.file.sync_data()
        })();
        match written {
            Ok(()) => {
                open.len = end;
                Ok(())
            }
            Err(err) => {
                let _ = open.file.set_len(open.len);
                open.allocated = open.len;
                Err(err)
            }
        }
    }

    /// Closes segments past `bytes` instead of [`SEGMENT_BYTES`] (tests use tiny segments).
    pub fn with_segment_bytes(mut self, bytes: u64) -> LogWriter {
        self.segment_bytes = bytes;
        self
    }

    /// Bytes the log takes on disk (preallocated space included).
    pub fn bytes(&self) -> u64 {
        self.closed_bytes + self.file.as_ref().map_or(0, |open| open.allocated)
    }

    /// Bytes of the log's frames: the closed segments, and the open one up to its last frame (its
    /// preallocated space, at most a block, left out).
    pub fn written_bytes(&self) -> u64 {
        self.closed_bytes + self.file.as_ref().map_or(0, |open| open.len)
    }

    /// Deletes every segment, the open one too, for when no item of the log is needed any more;
    /// the next commit begins a new segment. Returns how many went.
    pub fn clear(&mut self) -> io::Result<usize> {
        let mut gone = self.forget_through(i64::MAX)?;
        if let Some(&open) = self.segments.last() {
            self.file = None;
            fs::remove_file(segment_path(&self.dir, open))?;
            self.segments.pop();
            sync_dir(&self.dir)?;
            gone += 1;
        }
        Ok(gone)
    }

    /// Deletes the segments whose every item has a seq at or below `through` (never the open
    /// one). Returns how many went.
    pub fn forget_through(&mut self, through: i64) -> io::Result<usize> {
        let mut gone = 0;
        while self.segments.len() > 1 && self.segments[1] - 1 <= through {
            let first = self.segments.remove(0);
            let size = fs::metadata(segment_path(&self.dir, first)).map_or(0, |m| m.len());
            self.closed_bytes = self.closed_bytes.saturating_sub(size);
            fs::remove_file(segment_path(&self.dir, first))?;
            gone += 1;
        }
        if gone > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(gone)
    }
}

/// Gives `bytes` of the segment from `from` their blocks up front ([`PREALLOCATE`] at a time), so
/// that most commits write into allocated space instead of growing the file at every sync. (In a
/// profile, appending to a growing file raised the lake writer's kernel time from 2.7 % to 4.5 % of
/// all CPU; with preallocation a later profile showed 4.0 %.) The zeros past the last frame end the
/// log when it is read at start.
fn preallocate(file: &File, from: u64, bytes: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), from, bytes) {
        Ok(()) => Ok(()),
        // File systems without fallocate: the log grows as it is written.
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// The end of the last whole, intact frame with a seq not above `committed`.
fn valid_end(file: &File, committed: i64) -> io::Result<u64> {
    let size = file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(READ_AHEAD, file);
    let (mut at, mut head, mut payload) = (0u64, [0u8; HEADER], Vec::new());
    loop {
        if size - at < HEADER as u64 || io::Read::read_exact(&mut reader, &mut head).is_err() {
            return Ok(at);
        }
        let (len, sum, seq) = header(&head);
        if len > MAX_PAYLOAD || size - at - (HEADER as u64) < len as u64 || seq > committed {
            return Ok(at);
        }
        payload.resize(len, 0);
        io::Read::read_exact(&mut reader, &mut payload)?;
        if check(seq, &payload) != sum {
            return Ok(at);
        }
        at += (HEADER + len) as u64;
    }
}

/// Reads frames by (seq, offset), with read-ahead for frames read in order. Each reader lists the
/// segments itself (again when a frame is not where its listing says), so it runs beside the
/// writer.
pub struct LogReader {
    dir: PathBuf,
    segments: Vec<i64>,
    /// The segment read last (its first seq and file), and its bytes from `at`.
    open: Option<(i64, File)>,
    buf: Vec<u8>,
    at: u64,
}

impl LogReader {
    /// A reader of the log in `dir`.
    pub fn new(dir: &Path) -> LogReader {
        LogReader { dir: dir.to_owned(), segments: Vec::new(), open: None, buf: Vec::new(), at: 0 }
    }

    /// The payload of item `seq`, whose frame starts at `offset`.
    pub fn read(&mut self, seq: i64, offset: u64) -> io::Result<&[u8]> {
        let found = match self.segment_of(seq) {
            Some(first) => self.frame(first, seq, offset),
            None => Err(corrupt(format!("no log segment in {} holds item {seq}", self.dir.display()))),
        };
        let range = match found {
            Ok(range) => range,
            // A segment begun (or deleted) since the last listing, or bytes read ahead before the
            // writer cut back a failed append: list and read again, once.
            Err(_) => {
                self.segments = segments(&self.dir)?;
                self.open = None;
                let Some(first) = self.segment_of(seq) else {
                    return Err(corrupt(format!("no log segment in {} holds item {seq}", self.dir.display())));
                };
                self.frame(first, seq, offset)?
            }
        };
        Ok(&self.buf[range])
    }

    /// The segment that would hold `seq` among those listed.
    fn segment_of(&self, seq: i64) -> Option<i64> {
        let i = self.segments.partition_point(|&first| first <= seq);
        i.checked_sub(1).map(|i| self.segments[i])
    }

    /// Where the payload of item `seq`'s frame at `offset` of segment `first` lies in `buf`.
    fn frame(&mut self, first: i64, seq: i64, offset: u64) -> io::Result<std::ops::Range<usize>> {
        if self.open.as_ref().is_none_or(|(open, _)| *open != first) {
            let file = File::open(segment_path(&self.dir, first))?;
            self.open = Some((first, file));
            self.buf.clear();
        }
        let head = self.fetch(offset, HEADER)?;
        let (len, sum, frame_seq) = header(&self.buf[head..head + HEADER]);
        if frame_seq != seq || len > MAX_PAYLOAD {
            return Err(not_here(&self.dir, first, seq, offset));
        }
        let start = self.fetch(offset, HEADER + len)? + HEADER;
        if check(seq, &self.buf[start..start + len]) != sum {
            return Err(not_here(&self.dir, first, seq, offset));
        }
        Ok(start..start + len)
    }

    /// Makes `buf` hold the `len` bytes at `offset` of the open segment; returns where they start
    /// in `buf`.
    fn fetch(&mut self, offset: u64, len: usize) -> io::Result<usize> {
        let end = offset + len as u64;
        if offset >= self.at && end <= self.at + self.buf.len() as u64 {
            return Ok((offset - self.at) as usize);
        }
        let (_, file) = self.open.as_ref().expect("a segment is open");
        self.buf.resize(len.max(READ_AHEAD), 0);
        let mut filled = 0;
        while filled < self.buf.len() {
            match file.read_at(&mut self.buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(filled);
        self.at = offset;
        if filled < len {
            return Err(corrupt(format!("the log in {} ends inside the frame at {offset}", self.dir.display())));
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Writes `frames` to `out`, building a log by hand.
    fn write_frames(out: &mut impl Write, frames: &[(i64, &[u8])]) -> io::Result<()> {
        let mut buf = Vec::new();
        for (seq, payload) in frames {
            push_frame(&mut buf, *seq, payload);
        }
        out.write_all(&buf)
    }

    fn append(log: &mut LogWriter, frames: &[(i64, &[u8])]) -> Vec<u64> {
        let mut offset = log.begin(frames[0].0).unwrap();
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for (seq, payload) in frames {
            offsets.push(offset);
            let before = buf.len();
            push_frame(&mut buf, *seq, payload);
            offset += (buf.len() - before) as u64;
        }
        log.append(&buf).unwrap();
        offsets
    }

    #[test]
    fn a_commits_frames_reuse_the_buffer_up_to_the_kept_size() {
        let mut frames = Frames::default();
        frames.start();
        frames.push(1, &[7; 1000]);
        let mut expected = Vec::new();
        push_frame(&mut expected, 1, &[7; 1000]);
        assert_eq!(frames.bytes(), expected, "the frames are those push_frame writes");
        let grown = frames.capacity();
        frames.start();
        assert!(frames.is_empty(), "a new commit starts with no frames");
        assert_eq!(frames.capacity(), grown, "the room is kept for the next commit");
        frames.push(2, &vec![0; Frames::KEPT_BYTES]);
        assert!(frames.capacity() > Frames::KEPT_BYTES);
        frames.start();
        assert_eq!(frames.capacity(), 0, "a buffer grown past the bound is given back");
    }

    #[test]
    fn frames_are_read_back_by_seq_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::open(dir.path(), 0).unwrap();
        let offsets = append(&mut log, &[(1, b"one"), (2, b""), (3, &[7u8; 300_000])]);
        let mut reader = LogReader::new(dir.path());
        assert_eq!(reader.read(3, offsets[2]).unwrap(), &[7u8; 300_000][..]);
        assert_eq!(reader.read(1, offsets[0]).unwrap(), b"one");
        assert_eq!(reader.read(2, offsets[1]).unwrap(), b"");
        // A frame that is not the item's is refused, not returned.
        assert!(reader.read(2, offsets[0]).is_err_and(|e| e.kind() == io::ErrorKind::InvalidData));
    }

    #[test]
    fn a_cleared_log_holds_nothing_and_goes_on_with_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::open(dir.path(), 0).unwrap();
        log.segment_bytes = 1000;
        append(&mut log, &[(1, &[1u8; 1000])]);
        append(&mut log, &[(2, b"two")]);
        assert_eq!(segments(dir.path()).unwrap(), vec![1, 2]);
        assert!(log.written_bytes() > 1000 && log.written_bytes() <= log.bytes());
        assert_eq!(log.clear().unwrap(), 2);
        assert_eq!(segments(dir.path()).unwrap(), Vec::<i64>::new());
        assert_eq!((log.bytes(), log.written_bytes()), (0, 0));
        let offsets = append(&mut log, &[(3, b"three")]);
        assert_eq!((segments(dir.path()).unwrap(), offsets), (vec![3], vec![0]));
        assert_eq!(LogReader::new(dir.path()).read(3, 0).unwrap(), b"three");
    }

    #[test]
    fn a_full_segment_is_followed_by_a_new_one_and_old_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::open(dir.path(), 0).unwrap();
        log.segment_bytes = 1000;
        let big = vec![1u8; 1000];
        let first = append(&mut log, &[(1, &big)]);
        let second = append(&mut log, &[(2, b"two"), (3, b"three")]);
        let third = append(&mut log, &[(4, b"four")]);
        assert_eq!(segments(dir.path()).unwrap(), vec![1, 2]);
        let closed = fs::metadata(segment_path(dir.path(), 1)).unwrap().len();
        assert_eq!(closed, first[0] + (HEADER + 1000) as u64, "the closed segment gave back its preallocation");
        assert_eq!(log.bytes(), closed + fs::metadata(segment_path(dir.path(), 2)).unwrap().len());
        let mut reader = LogReader::new(dir.path());
        assert_eq!(reader.read(1, first[0]).unwrap().len(), big.len());
        assert_eq!(reader.read(3, second[1]).unwrap(), b"three");
        assert_eq!(reader.read(4, third[0]).unwrap(), b"four");
        // Segment 1 holds only item 1; the open segment always stays.
        assert_eq!(log.forget_through(0).unwrap(), 0);
        assert_eq!(log.forget_through(1).unwrap(), 1);
        assert_eq!(log.forget_through(10).unwrap(), 0);
        assert_eq!(segments(dir.path()).unwrap(), vec![2]);
        assert_eq!(log.bytes(), fs::metadata(segment_path(dir.path(), 2)).unwrap().len());
    }

    #[test]
    fn the_preallocated_space_past_the_last_frame_is_not_read_as_frames() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogWriter::open(dir.path(), 0).unwrap();
        let offsets = append(&mut log, &[(1, b"one"), (2, b"two")]);
        let end = log.begin(3).unwrap();
        assert!(fs::metadata(segment_path(dir.path(), 1)).unwrap().len() >= PREALLOCATE);
        drop(log);
        let mut log = LogWriter::open(dir.path(), 2).unwrap();
        assert_eq!(log.begin(3).unwrap(), end, "the next frame follows the last one");
        let more = append(&mut log, &[(3, b"three")]);
        let mut reader = LogReader::new(dir.path());
        assert_eq!(reader.read(2, offsets[1]).unwrap(), b"two");
        assert_eq!(reader.read(3, more[0]).unwrap(), b"three");
    }

    #[test]
    fn opening_cuts_torn_and_uncommitted_frames() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(segment_path(dir.path(), 1)).unwrap();
        write_frames(&mut file, &[(1, b"one"), (2, b"two"), (3, b"three")]).unwrap();
        let intact = file.metadata().unwrap().len();
        // A torn frame: its header promises more than is there.
        write_frames(&mut file, &[(4, b"four")]).unwrap();
        file.set_len(intact + 10).unwrap();
        // A segment begun by a commit that never reached the database.
        File::create(segment_path(dir.path(), 9)).unwrap();

        let mut log = LogWriter::open(dir.path(), 3).unwrap();
        assert_eq!(segments(dir.path()).unwrap(), vec![1]);
        assert_eq!(fs::metadata(segment_path(dir.path(), 1)).unwrap().len(), intact);
        // The database committed only up to 2: frame 3 goes too.
        drop(log);
        log = LogWriter::open(dir.path(), 2).unwrap();
        let offset = log.begin(3).unwrap();
        assert_eq!(offset, fs::metadata(segment_path(dir.path(), 1)).unwrap().len());
        let mut reader = LogReader::new(dir.path());
        assert!(reader.read(3, offset).is_err(), "frame 3 was cut");
        // A corrupt frame ends the log where it starts.
        let mut bytes = fs::read(segment_path(dir.path(), 1)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
        drop(log);
        LogWriter::open(dir.path(), 2).unwrap();
        let mut reader = LogReader::new(dir.path());
        assert_eq!(reader.read(1, 0).unwrap(), b"one");
        assert_eq!(fs::metadata(segment_path(dir.path(), 1)).unwrap().len(), (HEADER + 3) as u64);
    }
}
