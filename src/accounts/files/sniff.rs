//! The type of an upload, decided from its bytes (CONTRACT §8, §14.3): the client's MIME type and
//! extension are not trusted. Accepted are the legacy auth service's types (images, PDF, Word,
//! plain text, MP4/MOV/AVI video); SVG, ZIP, HTML, XML and scripts are refused.

/// A recognised type: the MIME type flux stores and serves, and the extension of the stored name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType {
    pub mime: &'static str,
    pub ext: &'static str,
}

const ALLOWED: &[FileType] = &[
    FileType {
        mime: "image/jpeg",
        ext: "jpg",
    },
    FileType {
        mime: "image/png",
        ext: "png",
    },
    FileType {
        mime: "image/gif",
        ext: "gif",
    },
    FileType {
        mime: "image/webp",
        ext: "webp",
    },
    FileType {
        mime: "application/pdf",
        ext: "pdf",
    },
    FileType {
        mime: "application/msword",
        ext: "doc",
    },
    FileType {
        mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ext: "docx",
    },
    FileType {
        mime: "video/mp4",
        ext: "mp4",
    },
    FileType {
        mime: "video/quicktime",
        ext: "mov",
    },
    FileType {
        mime: "video/x-msvideo",
        ext: "avi",
    },
];

const TEXT: FileType = FileType {
    mime: "text/plain",
    ext: "txt",
};

/// Images that browsers render without running anything; everything else downloads as attachment.
pub fn is_inline_image(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/gif" | "image/webp"
    )
}

/// The type of `bytes`, or `None` when flux does not accept it.
///
/// Text has no signature, so it is accepted only under a `.txt` name, as UTF-8 without NUL bytes,
/// and not when it opens like markup (`<`), which is how SVG, HTML and XML disguise themselves.
pub fn sniff(bytes: &[u8], original_name: &str) -> Option<FileType> {
    if let Some(kind) = infer::get(bytes) {
        return ALLOWED.iter().copied().find(|t| t.mime == kind.mime_type());
    }
    let named_txt = original_name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("txt"));
    let text = std::str::from_utf8(bytes).ok()?;
    let body = text.trim_start_matches('\u{feff}').trim_start();
    (named_txt && !bytes.is_empty() && !text.contains('\0') && !body.starts_with('<'))
        .then_some(TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

    #[test]
    fn by_content_not_by_name() {
        assert_eq!(sniff(PNG, "photo.pdf").map(|t| t.mime), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n", "x.bin").map(|t| t.ext), Some("pdf"));
        assert_eq!(sniff(b"hello\n", "notes.TXT"), Some(TEXT));
        assert_eq!(sniff(b"hello\n", "notes.png"), None);
    }

    #[test]
    fn refuses_active_content_and_archives() {
        let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
        assert_eq!(sniff(svg, "cat.png"), None);
        assert_eq!(sniff(svg, "cat.txt"), None);
        assert_eq!(sniff(b"  <html><script>x</script>", "a.txt"), None);
        assert_eq!(sniff(b"PK\x03\x04\x14\0\0\0\x08\0", "a.docx"), None);
        assert_eq!(sniff(b"", "empty.txt"), None);
        assert_eq!(sniff(b"a\0b", "bin.txt"), None);
        assert_eq!(sniff(b"#!/bin/sh\nrm -rf /", "x.sh"), None);
    }
}
