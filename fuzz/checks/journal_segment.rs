//! The properties of segment recovery on arbitrary bytes, shared by the
//! fuzz target and by `cargo test` (which replays the committed corpus).

use plexspaces_storage::journal::frame::{
    FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_BYTES, decode_frame, seal_successor,
};
use plexspaces_storage::journal::scan::{ScanEnd, scan_segment};

/// Scans `bytes` as segment 1 and checks what recovery accepted: frames back
/// to back from the header, inside the input, decoding again to the same
/// records, and an end that matches the last frame; recovery never
/// allocates more than the frame limit, nor a length the input only claims.
pub fn check(bytes: &[u8]) {
    let limit = crate::alloc_limit::decode_limit(FRAME_PAYLOAD_BYTES_MAX, bytes.len());
    let outcome = crate::alloc_limit::within(limit, "segment recovery", || scan_segment(bytes, 1));
    let Ok(scan) = outcome else {
        return;
    };
    let mut expected_offset = SEGMENT_HEADER_BYTES as u64;
    for frame in &scan.frames {
        assert_eq!(frame.offset, expected_offset, "frames are back to back");
        let end = frame.offset as usize + frame.len as usize;
        assert!(end <= bytes.len(), "a frame past the input");
        assert!(frame.len as usize >= FRAME_HEADER_BYTES);
        let (header, record, len) = decode_frame(&bytes[frame.offset as usize..end]).unwrap();
        assert_eq!((header, len), (frame.header, frame.len as usize));
        assert_eq!(record, frame.record);
        expected_offset = end as u64;
    }
    match scan.end {
        ScanEnd::Clean => assert_eq!(expected_offset, bytes.len() as u64),
        ScanEnd::TornTail { offset } => assert_eq!(offset, expected_offset),
        ScanEnd::Sealed { successor } => {
            // The seal follows the last frame and ends the input.
            let (header, record, len) = decode_frame(&bytes[expected_offset as usize..]).unwrap();
            assert_eq!(seal_successor(&header, &record), Some(successor));
            assert_eq!(
                expected_offset as usize + len,
                bytes.len(),
                "bytes after a seal"
            );
            let last_lsn = scan
                .frames
                .last()
                .map_or(scan.header.first_lsn - 1, |f| f.header.lsn);
            assert_eq!(
                header.commit_lsn, last_lsn,
                "a seal names the segment's last lsn"
            );
        }
    }
}
