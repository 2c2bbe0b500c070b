//! Images, documents and audio (reference: mapping §3.3): data URLs and bare base64 become
//! inline blocks, `s3://` URIs become S3 locations, `http(s)` images come from what the
//! service fetched beforehand (never fetched here: translators do no I/O).

use std::borrow::Cow;

use super::FetchedImage;
use super::tools::missing;
use crate::bedrock::converse::{
    AudioBlock, ContentBlock, DocumentBlock, ImageBlock, MediaSource, S3Location,
};
use crate::error::InvalidRequest;
use crate::openai::request::{ChatCompletionRequest, Content, FileRef, InputAudio, Role};

/// Longest document name Bedrock accepts.
const MAX_DOCUMENT_NAME: usize = 200;

/// The Bedrock image format for a MIME type (`image/png` → `png`).
pub fn image_format_for_mime(mime: &str) -> Option<&'static str> {
    let mime = mime.trim();
    let eq = |m: &str| mime.eq_ignore_ascii_case(m);
    if eq("image/png") {
        Some("png")
    } else if eq("image/jpeg") || eq("image/jpg") {
        Some("jpeg")
    } else if eq("image/gif") {
        Some("gif")
    } else if eq("image/webp") {
        Some("webp")
    } else {
        None
    }
}

fn image_format_for_extension(ext: &str) -> Option<&'static str> {
    match ext.to_ascii_lowercase().as_str() {
        "png" => Some("png"),
        "jpg" | "jpeg" => Some("jpeg"),
        "gif" => Some("gif"),
        "webp" => Some("webp"),
        _ => None,
    }
}

fn document_format_for_mime(mime: &str) -> Option<&'static str> {
    Some(match mime.trim().to_ascii_lowercase().as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" | "text/x-markdown" => "md",
        _ => return None,
    })
}

fn document_format_for_extension(ext: &str) -> Option<&'static str> {
    Some(match ext.to_ascii_lowercase().as_str() {
        "pdf" => "pdf",
        "csv" => "csv",
        "doc" => "doc",
        "docx" => "docx",
        "xls" => "xls",
        "xlsx" => "xlsx",
        "html" | "htm" => "html",
        "txt" | "text" => "txt",
        "md" | "markdown" => "md",
        _ => return None,
    })
}

/// Standard base64 with padding.
pub fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Checks base64 text and brings it to the form Bedrock wants: standard alphabet, padded, no
/// whitespace. Text already in that form is borrowed as it is.
fn normalize_base64(data: &str) -> Result<Cow<'_, str>, &'static str> {
    let body = data.trim_end_matches('=');
    let padding = data.len() - body.len();
    let canonical = !body.is_empty()
        && padding <= 2
        && data.len().is_multiple_of(4)
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if canonical {
        return Ok(Cow::Borrowed(data));
    }
    let mut out = String::with_capacity(data.len() + 3);
    let mut seen_padding = false;
    for c in data.chars() {
        match c {
            c if c.is_ascii_whitespace() => {}
            '=' => seen_padding = true,
            _ if seen_padding => return Err("has data after its `=` padding"),
            'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' => out.push(c),
            // The URL-safe alphabet, which some encoders use.
            '-' => out.push('+'),
            '_' => out.push('/'),
            _ => return Err("is not valid base64"),
        }
    }
    if out.is_empty() {
        return Err("is empty");
    }
    if out.len() % 4 == 1 {
        return Err("is not valid base64 (truncated)");
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    Ok(Cow::Owned(out))
}

/// `data:<mime>[;param…];base64,<data>` → (MIME type, data). `None` when `url` is not a data
/// URL; `Err` when it is one without base64 data.
fn split_data_url(url: &str) -> Option<Result<(&str, &str), &'static str>> {
    let head = url.get(..5)?;
    if !head.eq_ignore_ascii_case("data:") {
        return None;
    }
    let rest = &url[5..];
    let Some((meta, data)) = rest.split_once(',') else {
        return Some(Err("is a data URL without a `,` before its data"));
    };
    let mut params = meta.split(';');
    let mime = params.next().unwrap_or_default().trim();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Some(Err(
            "is a data URL without `;base64`; only base64 data URLs are supported",
        ));
    }
    Some(Ok((mime, data)))
}

/// An `image_url` part → an image block.
pub(super) fn image<'a>(
    url: &'a str,
    fetched: &'a [FetchedImage],
    param: impl Fn() -> String,
) -> Result<ContentBlock<'a>, InvalidRequest> {
    if let Some(parsed) = split_data_url(url) {
        let (mime, data) =
            parsed.map_err(|why| InvalidRequest::invalid(param(), format!("the image URL {why}")))?;
        let format = image_format_for_mime(mime).ok_or_else(|| {
            InvalidRequest::unsupported_value(
                param(),
                format!(
                    "image type `{mime}` is not supported; use image/png, image/jpeg, image/gif or image/webp"
                ),
            )
        })?;
        let bytes = normalize_base64(data)
            .map_err(|why| InvalidRequest::invalid(param(), format!("the image data {why}")))?;
        return Ok(ContentBlock::Image(ImageBlock {
            format,
            source: MediaSource::Bytes(bytes),
        }));
    }
    if is_http_url(url) {
        return match fetched.iter().find(|f| f.url == url) {
            Some(f) => Ok(ContentBlock::Image(ImageBlock {
                format: f.format,
                source: MediaSource::Bytes(Cow::Borrowed(&f.base64)),
            })),
            None => Err(InvalidRequest::unsupported_value(
                param(),
                "image URLs are not fetched by this gateway; send the image inline as a data URL (data:image/png;base64,…)",
            )),
        };
    }
    if let Some(key) = strip_prefix_ignore_case(url, "s3://") {
        let format = key
            .rsplit_once('.')
            .and_then(|(_, ext)| image_format_for_extension(ext))
            .ok_or_else(|| {
                InvalidRequest::invalid(
                    param(),
                    "the image format of an s3:// URI comes from its extension: .png, .jpg, .jpeg, .gif or .webp",
                )
            })?;
        return Ok(ContentBlock::Image(ImageBlock {
            format,
            source: MediaSource::S3Location(S3Location { uri: url }),
        }));
    }
    Err(InvalidRequest::invalid(
        param(),
        "the image URL must be a data URL (data:image/png;base64,…), an http(s) URL or an s3:// URI",
    ))
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn is_http_url(url: &str) -> bool {
    strip_prefix_ignore_case(url, "http://").is_some() || strip_prefix_ignore_case(url, "https://").is_some()
}

/// An `http(s)` image URL the service has to fetch before translating (when fetching is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage<'a> {
    /// The URL as the client sent it.
    pub url: &'a str,
    /// Where it was: `messages[i].content[j].image_url.url`, for the error's `param`.
    pub param: String,
}

/// The `http(s)` image URLs of the user messages, in order, each once.
pub fn remote_images<'a>(req: &ChatCompletionRequest<'a>) -> Vec<RemoteImage<'a>> {
    let mut images: Vec<RemoteImage<'a>> = Vec::new();
    for (i, m) in req
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::User)
    {
        let Some(Content::Parts(parts)) = &m.content else {
            continue;
        };
        for (j, part) in parts.iter().enumerate() {
            if part.kind == "image_url"
                && let Some(image) = part.image_url
                && is_http_url(image.url)
                && !images.iter().any(|r| r.url == image.url)
            {
                images.push(RemoteImage {
                    url: image.url,
                    param: format!("messages[{i}].content[{j}].image_url.url"),
                });
            }
        }
    }
    images
}

/// An `input_audio` part → an audio block.
pub(super) fn audio<'a>(
    audio: &InputAudio<'a>,
    param: impl Fn(&str) -> String,
) -> Result<ContentBlock<'a>, InvalidRequest> {
    if !matches!(audio.format, "wav" | "mp3") {
        return Err(InvalidRequest::invalid(
            param("format"),
            format!("unknown audio format `{}`; expected wav or mp3", audio.format),
        ));
    }
    let bytes = normalize_base64(audio.data)
        .map_err(|why| InvalidRequest::invalid(param("data"), format!("the audio data {why}")))?;
    Ok(ContentBlock::Audio(AudioBlock {
        format: audio.format,
        source: MediaSource::Bytes(bytes),
    }))
}

/// Document names already given in this request, so each one is unique.
#[derive(Debug, Default)]
pub(super) struct DocumentNames {
    used: Vec<String>,
}

impl DocumentNames {
    fn claim(&mut self, base: String) -> String {
        let mut name = base.clone();
        let mut n = 2;
        while self.used.contains(&name) {
            let suffix = format!(" ({n})");
            let keep = MAX_DOCUMENT_NAME.saturating_sub(suffix.len()).min(base.len());
            name = format!("{}{suffix}", base[..keep].trim_end());
            n += 1;
        }
        self.used.push(name.clone());
        name
    }
}

/// A `file` part → a document block.
pub(super) fn document<'a>(
    file: &FileRef<'a>,
    names: &mut DocumentNames,
    param: impl Fn(&str) -> String,
) -> Result<ContentBlock<'a>, InvalidRequest> {
    let Some(data) = file.file_data else {
        if file.file_id.is_some() {
            return Err(InvalidRequest::unsupported_value(
                param("file_id"),
                "uploaded files cannot be read through Bedrock; send the content inline as `file_data`",
            ));
        }
        return Err(missing(param("file_data")));
    };
    let extension = file
        .filename
        .and_then(|n| n.rsplit_once('.'))
        .and_then(|(_, ext)| document_format_for_extension(ext));
    let (format, base64) = match split_data_url(data) {
        Some(parsed) => {
            let (mime, data) = parsed
                .map_err(|why| InvalidRequest::invalid(param("file_data"), format!("`file_data` {why}")))?;
            (document_format_for_mime(mime).or(extension), data)
        }
        None => (extension, data),
    };
    let format = format.ok_or_else(|| {
        InvalidRequest::unsupported_value(
            param("file_data"),
            "the document type is not supported or unknown: send a data URL with its MIME type, or a `filename` with one of the extensions pdf, csv, doc, docx, xls, xlsx, html, txt, md",
        )
    })?;
    let bytes = normalize_base64(base64)
        .map_err(|why| InvalidRequest::invalid(param("file_data"), format!("the document data {why}")))?;
    let name = file.filename.map(document_name).filter(|n| !n.is_empty());
    let name = name.unwrap_or_else(|| format!("document-{}", names.used.len() + 1));
    Ok(ContentBlock::Document(DocumentBlock {
        format,
        name: names.claim(name),
        source: MediaSource::Bytes(bytes),
    }))
}

/// A file name as Bedrock allows document names (reference: mapping §3.3): the stem, with
/// characters outside `[A-Za-z0-9 \-()\[\]]` replaced by `-`, whitespace runs collapsed to
/// one space, at most 200 characters.
fn document_name(filename: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let stem = match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => base,
    };
    let mut name = String::with_capacity(stem.len().min(MAX_DOCUMENT_NAME));
    for c in stem.chars() {
        if c.is_whitespace() {
            if !name.is_empty() && !name.ends_with(' ') {
                name.push(' ');
            }
        } else if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            name.push(c);
        } else {
            name.push('-');
        }
        if name.len() >= MAX_DOCUMENT_NAME {
            break;
        }
    }
    name.truncate(MAX_DOCUMENT_NAME);
    name.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_encoding_matches_rfc_4648_vectors() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_base64(raw.as_bytes()), encoded);
        }
    }

    #[test]
    fn canonical_base64_is_borrowed_and_the_rest_normalized() {
        assert!(matches!(normalize_base64("iVBORw0KGgo="), Ok(Cow::Borrowed(_))));
        assert_eq!(normalize_base64("iVBO Rw0K\nGgo=").unwrap(), "iVBORw0KGgo=");
        assert_eq!(normalize_base64("iVBORw0KGgo").unwrap(), "iVBORw0KGgo=");
        assert_eq!(normalize_base64("-_-_").unwrap(), "+/+/");
        assert!(normalize_base64("").is_err());
        assert!(normalize_base64("ab$d").is_err());
        assert!(normalize_base64("abcde").is_err());
        assert!(normalize_base64("ab==cd").is_err());
    }

    #[test]
    fn data_urls_need_base64() {
        assert_eq!(
            split_data_url("data:image/png;base64,AAAA"),
            Some(Ok(("image/png", "AAAA")))
        );
        assert_eq!(
            split_data_url("DATA:text/plain;charset=utf-8;base64,AAAA"),
            Some(Ok(("text/plain", "AAAA")))
        );
        assert!(matches!(split_data_url("data:text/plain,hello"), Some(Err(_))));
        assert_eq!(split_data_url("https://x/y.png"), None);
    }

    #[test]
    fn document_names_follow_bedrock_rules() {
        assert_eq!(document_name("report.pdf"), "report");
        assert_eq!(document_name("Q3 report.final.pdf"), "Q3 report-final");
        assert_eq!(document_name("a  b\t\tc.txt"), "a b c");
        assert_eq!(
            document_name("dir/sub\\Résumé (v2) [draft].docx"),
            "R-sum- (v2) [draft]"
        );
        assert_eq!(document_name(".env"), "-env");
        assert_eq!(document_name(&"x".repeat(300)).len(), 200);
        let mut names = DocumentNames::default();
        assert_eq!(names.claim("a".into()), "a");
        assert_eq!(names.claim("a".into()), "a (2)");
        assert_eq!(names.claim("a".into()), "a (3)");
    }
}
