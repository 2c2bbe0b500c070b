//! Images, documents and audio (reference: mapping §3.3).

use serde_json::json;

use super::*;

fn user_parts(parts: &str) -> String {
    with_messages(&format!(r#"[{{"role":"user","content":[{parts}]}}]"#))
}

fn image(url: &str) -> String {
    user_parts(&format!(
        r#"{{"type":"text","text":"look"}},{{"type":"image_url","image_url":{{"url":"{url}"}}}}"#
    ))
}

#[test]
fn data_url_images_become_inline_image_blocks() {
    for (mime, format) in [
        ("image/png", "png"),
        ("image/jpeg", "jpeg"),
        ("image/jpg", "jpeg"),
        ("IMAGE/GIF", "gif"),
        ("image/webp", "webp"),
    ] {
        let v = translate(&image(&format!("data:{mime};base64,iVBORw0KGgo="))).unwrap();
        assert_eq!(
            v["messages"][0]["content"][1],
            json!({"image": {"format": format, "source": {"bytes": "iVBORw0KGgo="}}}),
            "{mime}"
        );
    }
}

#[test]
fn image_base64_is_normalized() {
    let v = translate(&image("data:image/png;base64,iVBO Rw0K\\nGgo")).unwrap();
    assert_eq!(
        v["messages"][0]["content"][1]["image"]["source"]["bytes"],
        "iVBORw0KGgo="
    );
}

#[test]
fn bad_images_are_named() {
    let err = assert_rejected(
        &image("data:image/bmp;base64,AAAA"),
        "messages[0].content[1].image_url.url",
        "unsupported_value",
    );
    assert!(err.message.contains("image/bmp"), "{}", err.message);
    assert_rejected(
        &image("data:image/png;base64,@@@"),
        "messages[0].content[1].image_url.url",
        "invalid_value",
    );
    assert_rejected(
        &image("data:image/png,rawbytes"),
        "messages[0].content[1].image_url.url",
        "invalid_value",
    );
    assert_rejected(
        &image("ftp://x/y.png"),
        "messages[0].content[1].image_url.url",
        "invalid_value",
    );
    assert_rejected(
        &user_parts(r#"{"type":"image_url"}"#),
        "messages[0].content[0].image_url",
        "missing_required_parameter",
    );
}

#[test]
fn http_images_are_refused_unless_the_service_fetched_them() {
    let body = image("https://example.com/cat.png");
    let err = assert_rejected(&body, "messages[0].content[1].image_url.url", "unsupported_value");
    assert!(err.message.contains("data URL"), "{}", err.message);
    let fetched = [FetchedImage {
        url: "https://example.com/cat.png".into(),
        format: "png",
        base64: "iVBORw0KGgo=".into(),
    }];
    let (v, _) = translate_for(&body, "{}", &fetched).unwrap();
    assert_eq!(
        v["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
}

#[test]
fn s3_images_become_s3_locations() {
    let v = translate(&image("s3://bucket/dir/cat.JPG")).unwrap();
    assert_eq!(
        v["messages"][0]["content"][1],
        json!({"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/dir/cat.JPG"}}}})
    );
    assert_rejected(
        &image("s3://bucket/cat"),
        "messages[0].content[1].image_url.url",
        "invalid_value",
    );
}

#[test]
fn remote_images_lists_each_http_url_of_user_messages_once_with_its_place() {
    let body = user_parts(
        r#"{"type":"image_url","image_url":{"url":"https://a/1.png"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
           {"type":"image_url","image_url":{"url":"HTTP://b/2.png"}},{"type":"image_url","image_url":{"url":"https://a/1.png"}}"#,
    );
    let mut buf = body.into_bytes();
    let req = ChatCompletionRequest::parse(&mut buf).unwrap();
    let images = remote_images(&req);
    let found: Vec<(&str, &str)> = images.iter().map(|r| (r.url, r.param.as_str())).collect();
    assert_eq!(
        found,
        [
            ("https://a/1.png", "messages[0].content[0].image_url.url"),
            ("HTTP://b/2.png", "messages[0].content[2].image_url.url")
        ]
    );
}

#[test]
fn files_become_documents_with_sanitized_unique_names() {
    let v = translate(&user_parts(
        r#"{"type":"text","text":"Summarize"},
           {"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"Q3 report.final.pdf"}},
           {"type":"file","file":{"file_data":"aGVsbG8=","filename":"notes.md"}},
           {"type":"file","file":{"file_data":"data:text/csv;base64,YSxi"}},
           {"type":"file","file":{"file_data":"data:application/octet-stream;base64,UEs=","filename":"Q3 report.final.xlsx"}}"#,
    ))
    .unwrap();
    assert_eq!(
        v["messages"][0]["content"],
        json!([
            {"text": "Summarize"},
            {"document": {"format": "pdf", "name": "Q3 report-final", "source": {"bytes": "JVBERi0="}}},
            {"document": {"format": "md", "name": "notes", "source": {"bytes": "aGVsbG8="}}},
            {"document": {"format": "csv", "name": "document-3", "source": {"bytes": "YSxi"}}},
            {"document": {"format": "xlsx", "name": "Q3 report-final (2)", "source": {"bytes": "UEs="}}}
        ])
    );
}

#[test]
fn unusable_files_are_named() {
    assert_rejected(
        &user_parts(r#"{"type":"file","file":{"file_id":"file-abc"}}"#),
        "messages[0].content[0].file.file_id",
        "unsupported_value",
    );
    assert_rejected(
        &user_parts(r#"{"type":"file","file":{"file_data":"AAAA","filename":"a.exe"}}"#),
        "messages[0].content[0].file.file_data",
        "unsupported_value",
    );
    assert_rejected(
        &user_parts(r#"{"type":"file","file":{"filename":"a.pdf"}}"#),
        "messages[0].content[0].file.file_data",
        "missing_required_parameter",
    );
    assert_rejected(
        &user_parts(
            r#"{"type":"file","file":{"file_data":"data:application/pdf;base64,%%","filename":"a.pdf"}}"#,
        ),
        "messages[0].content[0].file.file_data",
        "invalid_value",
    );
}

#[test]
fn audio_input_needs_a_model_flagged_for_it() {
    let body = user_parts(r#"{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}"#);
    assert_rejected(&body, "messages[0].content[0].type", "unsupported_value");
    let (v, _) = translate_for(&body, "supports_audio_input: true", &[]).unwrap();
    assert_eq!(
        v["messages"][0]["content"][0],
        json!({"audio": {"format": "wav", "source": {"bytes": "UklGRg=="}}})
    );
    rejected_for(
        &body.replace("\"wav\"", "\"ogg\""),
        "supports_audio_input: true",
        "messages[0].content[0].input_audio.format",
        "invalid_value",
    );
}

#[test]
fn media_parts_are_only_allowed_in_user_messages() {
    assert_rejected(
        &with_messages(
            r#"[{"role":"system","content":[{"type":"image_url","image_url":{"url":"x"}}]},{"role":"user","content":"a"}]"#,
        ),
        "messages[0].content[0].type",
        "invalid_value",
    );
    assert_rejected(
        &with_messages(r#"[{"role":"user","content":[{"type":"refusal","refusal":"no"}]}]"#),
        "messages[0].content[0].type",
        "invalid_value",
    );
    let err = assert_rejected(
        &with_messages(r#"[{"role":"user","content":[{"type":"video","video":{}}]}]"#),
        "messages[0].content[0].type",
        "invalid_value",
    );
    assert_eq!(err.message, "unknown content part type `video`");
}
