//! Whether a coded picture can be referred to by others, read from the packet's bitstream: a
//! picture nothing refers to can be left out without changing any other frame (`gop_skip`).
//! Only the first bytes of each unit are read; anything unexpected answers "don't know".

use ffmpeg_next as ff;

/// How a codec's packets say whether their picture is a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefSyntax {
    /// H.264 NAL units with a length prefix of this many bytes (MP4, MKV: `avcC`).
    H264Length(usize),
    /// H.264 NAL units after start codes (MPEG-TS, raw streams).
    H264AnnexB,
    /// MPEG-1/2 picture headers: B-pictures are never references.
    Mpeg12,
    /// MPEG-4 Part 2 VOP headers: B-VOPs are never references.
    Mpeg4,
    /// Not known: every picture may be a reference.
    Unknown,
}

impl RefSyntax {
    /// The syntax of `codec` with the stream's `extradata`.
    pub fn of(codec: ff::codec::Id, extradata: &[u8]) -> RefSyntax {
        match codec {
            ff::codec::Id::H264 if extradata.first() == Some(&1) && extradata.len() > 4 => {
                RefSyntax::H264Length(usize::from(extradata[4] & 3) + 1)
            }
            ff::codec::Id::H264 => RefSyntax::H264AnnexB,
            ff::codec::Id::MPEG1VIDEO | ff::codec::Id::MPEG2VIDEO => RefSyntax::Mpeg12,
            ff::codec::Id::MPEG4 => RefSyntax::Mpeg4,
            _ => RefSyntax::Unknown,
        }
    }

    /// Whether decoding can start again at this key frame after the decoder was flushed and give
    /// every frame after it as decoding straight through would: an IDR picture in H.264 (FFmpeg
    /// drops frames after an I-picture that is only a recovery point when it is drained soon
    /// after the flush), any key frame otherwise.
    pub fn is_restart(self, data: &[u8]) -> bool {
        match self {
            RefSyntax::H264Length(_) | RefSyntax::H264AnnexB => {
                self.h264_first_slice(data).is_some_and(|h| h & 0x1f == 5)
            }
            _ => true,
        }
    }

    /// `Some(false)` when the packet's picture is certainly not a reference, `Some(true)` when it
    /// is, `None` when the packet does not say.
    pub fn is_reference(self, data: &[u8]) -> Option<bool> {
        match self {
            // The first slice's nal_ref_idc (every slice of a picture has the same, by the
            // standard).
            RefSyntax::H264Length(_) | RefSyntax::H264AnnexB => {
                self.h264_first_slice(data).map(|h| h & 0x60 != 0)
            }
            // Picture header: 10 bits temporal reference, 3 bits coding type (3 = B).
            RefSyntax::Mpeg12 => start_coded(data)
                .find(|(code, _)| *code == 0x00)
                .and_then(|(_, unit)| unit.get(2))
                .map(|b| (b >> 3) & 7 != 3),
            // VOP header: 2 bits coding type (2 = B).
            RefSyntax::Mpeg4 => start_coded(data)
                .find(|(code, _)| *code == 0xB6)
                .and_then(|(_, unit)| unit.get(1))
                .map(|b| b >> 6 != 2),
            RefSyntax::Unknown => None,
        }
    }

    /// The NAL header of an H.264 packet's first slice; `None` without one, or at a unit with
    /// the forbidden bit set (not H.264 as we know it).
    fn h264_first_slice(self, data: &[u8]) -> Option<u8> {
        let units: Box<dyn Iterator<Item = &[u8]>> = match self {
            RefSyntax::H264Length(n) => Box::new(length_prefixed(data, n)),
            _ => Box::new(start_coded(data).map(|(_, unit)| unit)),
        };
        for header in units.filter_map(|u| u.first().copied()) {
            if header & 0x80 != 0 {
                return None;
            }
            if matches!(header & 0x1f, 1..=5) {
                return Some(header);
            }
        }
        None
    }
}

/// Units of a length-prefixed stream; stops at a length that runs past the end.
fn length_prefixed(data: &[u8], n: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < n || n == 0 {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        let unit = rest.get(n..n + len)?;
        rest = &rest[n + len..];
        Some(unit)
    })
}

/// (byte after the start code, the data from that byte on) for each start code of an Annex B /
/// MPEG stream, lazily (callers read a few bytes of the first units they need); for H.264 the
/// byte is the NAL header.
fn start_coded(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let at = data.get(from..)?.windows(3).position(|w| w == [0, 0, 1])? + from + 3;
        from = at;
        data.get(at).map(|&code| (code, &data[at..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_reference_flags_in_both_packagings() {
        // SEI (6), then a non-reference slice (ref_idc 0, type 1).
        let nonref = [0x06, 0x05, 0x01, 0x41, 0x9a];
        let annexb: Vec<u8> = [&[0, 0, 0, 1][..], &nonref[..2], &[0, 0, 1], &[0x01, 0x9a]].concat();
        assert_eq!(RefSyntax::H264AnnexB.is_reference(&annexb), Some(false));
        // IDR slice (ref_idc 3, type 5).
        let idr: Vec<u8> = [&[0, 0, 1][..], &[0x65, 0x88, 0x84]].concat();
        assert_eq!(RefSyntax::H264AnnexB.is_reference(&idr), Some(true));
        assert!(RefSyntax::H264AnnexB.is_restart(&idr));
        assert!(!RefSyntax::H264AnnexB.is_restart(&annexb));
        // Length-prefixed: 4-byte lengths, a reference P slice (0x41: ref_idc 2, type 1).
        let avcc = [0, 0, 0, 2, 0x09, 0x10, 0, 0, 0, 3, 0x41, 0x9a, 0x02];
        assert_eq!(RefSyntax::H264Length(4).is_reference(&avcc), Some(true));
        let avcc_nonref = [0, 0, 0, 2, 0x01, 0x9a];
        assert_eq!(
            RefSyntax::H264Length(4).is_reference(&avcc_nonref),
            Some(false)
        );
        // No slice, a length past the end, or the forbidden bit: don't know.
        assert_eq!(
            RefSyntax::H264Length(4).is_reference(&[0, 0, 0, 2, 0x09, 0x10]),
            None
        );
        assert_eq!(
            RefSyntax::H264Length(4).is_reference(&[0, 0, 0, 9, 0x01]),
            None
        );
        assert_eq!(
            RefSyntax::H264AnnexB.is_reference(&[0, 0, 1, 0x81, 0]),
            None
        );
    }

    #[test]
    fn mpeg_picture_types() {
        // Sequence header (B3), then a picture header: temporal reference 0, coding type 3 (B).
        let b = [0, 0, 1, 0xB3, 0x14, 0, 0, 1, 0x00, 0x00, 0x1F, 0xFF];
        assert_eq!(RefSyntax::Mpeg12.is_reference(&b), Some(false));
        let p = [0, 0, 1, 0x00, 0x00, 0x17, 0xFF]; // coding type 2 (P)
        assert_eq!(RefSyntax::Mpeg12.is_reference(&p), Some(true));
        assert_eq!(RefSyntax::Mpeg12.is_reference(&[0, 0, 1, 0xB3, 0x14]), None);
        let bvop = [0, 0, 1, 0xB6, 0x80];
        assert_eq!(RefSyntax::Mpeg4.is_reference(&bvop), Some(false));
        assert_eq!(
            RefSyntax::Mpeg4.is_reference(&[0, 0, 1, 0xB6, 0x40]),
            Some(true)
        );
        assert_eq!(RefSyntax::Unknown.is_reference(&b), None);
    }
}
