//! Hand-checked counts for the estimator, and the promise that no input makes it panic.
use std::sync::OnceLock;

use super::*;

fn bpe() -> &'static CoreBPE {
    static B: OnceLock<CoreBPE> = OnceLock::new();
    B.get_or_init(|| shared::build().unwrap())
}

fn est(body: &str) -> u64 {
    estimate_anthropic_request(body.as_bytes(), bpe()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    image::tests::b64(bytes)
}

#[test]
fn tokenizer_is_o200k() {
    // o200k_base: "hello world" is 2 tokens, "<|endoftext|>" is plain text (not special).
    assert_eq!(count_text(bpe(), "hello world"), 2);
    assert_eq!(count_text(bpe(), ""), 0);
    assert!(count_text(bpe(), "<|endoftext|>") > 1);
}

#[test]
fn hello_world_message() {
    // priming 3 + message 3 + "user" 1 + "hello world" 2.
    let n = est(r#"{"model":"gpt","messages":[{"role":"user","content":"hello world"}]}"#);
    assert_eq!(n, 3 + 3 + 1 + 2);
    // The block form counts the same.
    let n2 = est(
        r#"{"model":"gpt","messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#,
    );
    assert_eq!(n2, n);
}

#[test]
fn system_prompt_is_a_message() {
    let base = est(r#"{"model":"gpt","messages":[{"role":"user","content":"hello world"}]}"#);
    let with = est(
        r#"{"model":"gpt","system":"hello world","messages":[{"role":"user","content":"hello world"}]}"#,
    );
    // message 3 + "system" 1 + "hello world" 2.
    assert_eq!(with - base, 3 + 1 + 2);
    let blocks = est(
        r#"{"model":"gpt","system":[{"type":"text","text":"hello world"}],"messages":[{"role":"user","content":"hello world"}]}"#,
    );
    assert_eq!(blocks, with);
}

#[test]
fn tool_definition_follows_the_cookbook() {
    let base = est(r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#);
    let body = r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[
        {"name":"get_weather","description":"Get the weather.","input_schema":{"type":"object",
         "properties":{"city":{"type":"string","description":"The city."},
                       "unit":{"type":"string","description":"Unit","enum":["c","f"]}}}}]}"#;
    let t = |s| count_text(bpe(), s);
    // Trailing periods are dropped, as the cookbook does.
    let want = FUNC_INIT_TOKENS
        + t("get_weather:Get the weather")
        + PROP_INIT_TOKENS
        + PROP_KEY_TOKENS
        + t("city:string:The city")
        + PROP_KEY_TOKENS
        - ENUM_INIT_DEDUCTION
        + ENUM_ITEM_TOKENS
        + t("c")
        + ENUM_ITEM_TOKENS
        + t("f")
        + t("unit:string:Unit")
        + FUNC_END_TOKENS;
    assert_eq!(est(body) - base, want);
    // Sanity of the hand count: 7 + ~6 + 3 + 3 + ~5 + 3 - 3 + 3 + 1 + 3 + 1 + ~4 + 12.
    assert!((40..70).contains(&want), "{want}");
}

#[test]
fn nested_schema_counts_its_text() {
    let flat = r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[
        {"name":"t","input_schema":{"type":"object","properties":{"xs":{"type":"array"}}}}]}"#;
    let nested = r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[
        {"name":"t","input_schema":{"type":"object","properties":{"xs":{"type":"array",
         "items":{"type":"object","properties":{"deeply":{"type":"string"}}}}}}}]}"#;
    assert!(est(nested) > est(flat) + 5);
}

#[test]
fn png_low_and_high_detail() {
    let png = |w, h| b64(&image::tests::png(w, h));
    let body = |data: &str| {
        format!(
            r#"{{"model":"gpt","messages":[{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{data}"}}}}]}}]}}"#
        )
    };
    let empty = est(r#"{"model":"gpt","messages":[{"role":"user","content":[]}]}"#);
    // 1024x1024 at high detail: 765 (the vision guide's example).
    assert_eq!(est(&body(&png(1024, 1024))) - empty, 765);
    // 100x100: one tile.
    assert_eq!(est(&body(&png(100, 100))) - empty, 85 + 170);
    // Unknown size (a URL): the documented maximum.
    let url = est(
        r#"{"model":"gpt","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]}"#,
    );
    assert_eq!(url - empty, image::unknown_image_tokens());
    // Low detail is a constant 85 (Anthropic images have no detail; the rule still holds).
    assert_eq!(image::image_tokens(4000, 3000, Detail::Low), 85);
    // 4000x3000 fits 2048x1536, then 1024x768: 2x2 tiles.
    assert_eq!(image::image_tokens(4000, 3000, Detail::High), 85 + 170 * 4);
}

#[test]
fn tool_use_tool_result_thinking_and_documents_count() {
    let base = est(r#"{"model":"gpt","messages":[{"role":"assistant","content":[]}]}"#);
    let with = |block: &str| {
        est(&format!(
            r#"{{"model":"gpt","messages":[{{"role":"assistant","content":[{block}]}}]}}"#
        )) - base
    };
    let t = |s| count_text(bpe(), s);
    assert_eq!(
        with(r#"{"type":"tool_use","id":"x","name":"get_weather","input":{"city":"Paris"}}"#),
        TOKENS_PER_MESSAGE + t("get_weather") + t(r#"{"city":"Paris"}"#)
    );
    assert_eq!(
        with(r#"{"type":"tool_result","tool_use_id":"x","content":"sunny and warm"}"#),
        TOKENS_PER_MESSAGE + t("tool") + t("sunny and warm")
    );
    assert_eq!(
        with(r#"{"type":"thinking","thinking":"let me think about it","signature":"s"}"#),
        t("let me think about it")
    );
    assert_eq!(
        with(
            r#"{"type":"document","source":{"type":"text","media_type":"text/plain","data":"the document text"}}"#
        ),
        t("the document text")
    );
    // A PDF: a size-based page estimate, at least one page.
    let page = PDF_TEXT_TOKENS_PER_PAGE + 765;
    let pdf = |bytes: usize| {
        let data = b64(&vec![b'%'; bytes]);
        with(&format!(
            r#"{{"type":"document","source":{{"type":"base64","media_type":"application/pdf","data":"{data}"}}}}"#
        ))
    };
    assert_eq!(pdf(3), page);
    assert_eq!(pdf(120_000), 3 * page);
}

#[test]
fn longer_prompts_count_more() {
    let short = est(r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#);
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    let long = est(&format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":"{text}"}}]}}"#
    ));
    // 10 tokens per sentence, 200 sentences.
    assert!((short + 1900..short + 2100).contains(&long), "{long}");
}

#[test]
fn chunking_keeps_counts_exact_at_whitespace() {
    let text = "Lorem ipsum dolor sit amet,  consectetur\n\nadipiscing elit. ".repeat(500);
    assert!(text.len() > 4 * TEXT_CHUNK_BYTES);
    assert_eq!(count_text(bpe(), &text), bpe().count_ordinary(&text) as u64);
    // Multi-byte text without whitespace is cut at char boundaries, never inside one.
    let cjk = "漢字かな交じり文".repeat(2000);
    let n = count_text(bpe(), &cjk);
    let exact = bpe().count_ordinary(&cjk) as u64;
    assert!(n.abs_diff(exact) * 100 <= exact, "{n} vs {exact}");
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        "",
        "{",
        "[]",
        r#"{"model":"gpt"}"#,
        r#"{"model":"gpt","messages":"hi"}"#,
        r#"{"model":"gpt","messages":[{"role":"user"}]}"#,
        r#"{"model":"gpt","messages":[],"tools":[{"description":"no name"}]}"#,
        // Each `tools` is checked, as when they were read in place.
        r#"{"model":"gpt","messages":[],"tools":[{"name":7}],"tools":[]}"#,
    ] {
        assert!(
            estimate_anthropic_request(body.as_bytes(), bpe()).is_err(),
            "{body:?}"
        );
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn arbitrary_input_never_panics() {
    // Raw bytes, and valid requests with one byte flipped or cut short: the estimator
    // answers a number or an error, whatever it is given.
    let tools = r#"[{"name":"t","description":"d","input_schema":{"type":"object","properties":{"a":{"type":["string","null"],"enum":[1,"x",null]},"b":true}}}]"#;
    let img = b64(&image::tests::png(3000, 200));
    let valid = format!(
        r#"{{"model":"gpt","system":"s","tools":{tools},"messages":[{{"role":"user","content":[{{"type":"text","text":"hi"}},{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{img}"}}}},{{"type":"tool_result","tool_use_id":"x","content":[{{"type":"text","text":"r"}}]}},{{"type":"document","source":{{"type":"content","content":[{{"type":"text","text":"d"}}]}}}}]}}]}}"#
    );
    assert!(est(&valid) > 0);
    for seed in 0..300u64 {
        let raw = noise(seed, (seed as usize * 7) % 600);
        let _ = estimate_anthropic_request(&raw, bpe());
        let mut v = valid.clone().into_bytes();
        let noise = noise(seed + 1000, 2);
        let at = (noise[0] as usize * 131 + seed as usize) % v.len();
        v[at] = noise[1];
        let _ = estimate_anthropic_request(&v, bpe());
        let _ = estimate_anthropic_request(&v[..at], bpe());
    }
    // The same for Chat and Responses bodies, with text budgets that cut inside multibyte
    // characters.
    let chat = format!(
        r#"{{"model":"gpt","tools":[{{"type":"function","function":{{"name":"t","parameters":{{"type":"object","properties":{{"a":{{"enum":[1,"é"]}}}}}}}}}}],"messages":[{{"role":"user","content":[{{"type":"text","text":"héllo 🌍 wörld"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{img}"}}}},{{"type":"input_audio","input_audio":{{"data":"{img}","format":"wav"}}}},{{"type":"file","file":{{"file_data":"data:application/pdf;base64,AAAA"}}}}]}}]}}"#
    );
    assert!(est_openai(&chat) > 0);
    for seed in 0..300u64 {
        let budget = [0, 1, 2, 3, 5, 7, 4096, usize::MAX][seed as usize % 8];
        let format = [Format::OpenAi, Format::Responses][seed as usize % 2];
        let raw = noise(seed, (seed as usize * 7) % 600);
        let _ = estimate_request(format, &raw, bpe(), budget);
        let mut v = chat.clone().into_bytes();
        let noise = noise(seed + 1000, 2);
        let at = (noise[0] as usize * 131 + seed as usize) % v.len();
        let _ = estimate_request(format, &v[..at], bpe(), budget);
        v[at] = noise[1];
        let _ = estimate_request(format, &v, bpe(), budget);
    }
    // Image headers from noise: a size or None, never a panic.
    for seed in 0..2000u64 {
        let mut bytes = noise(seed, 64);
        let prefixes: [&[u8]; 5] = [
            b"\x89PNG\r\n\x1a\n",
            b"GIF89a",
            b"RIFF\0\0\0\0WEBPVP8L",
            b"RIFF\0\0\0\0WEBPVP8X",
            b"\xff\xd8\xff",
        ];
        let p = prefixes[seed as usize % prefixes.len()];
        bytes[..p.len()].copy_from_slice(p);
        let _ = image::base64_image_size(&b64(&bytes));
        let _ = image::base64_image_size(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn hostile_text_is_bounded() {
    // Long runs with no whitespace, and long whitespace runs, count in reasonable time.
    let start = std::time::Instant::now();
    for s in [
        "a".repeat(200_000),
        " ".repeat(200_000),
        "\n ".repeat(100_000),
        "1".repeat(200_000),
    ] {
        assert!(count_text(bpe(), &s) > 0);
    }
    // Generous for a debug build on a shared machine; a quadratic blow-up takes minutes.
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
}

/// The estimate of an OpenAI Chat or Responses body, unbounded.
fn est_openai(body: &str) -> u64 {
    estimate_request(Format::OpenAi, body.as_bytes(), bpe(), usize::MAX).unwrap()
}

#[test]
fn chat_and_responses_bodies_count_like_the_messages_they_carry() {
    // priming 3 + message 3 + "user" 1 + "hello world" 2, as for a Messages body.
    let chat = est_openai(
        r#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello world"}]}"#,
    );
    assert_eq!(chat, 3 + 3 + 1 + 2);
    let parts = est_openai(
        r#"{"model":"gpt","messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#,
    );
    assert_eq!(parts, chat);
    assert_eq!(
        chat,
        est(r#"{"model":"gpt","messages":[{"role":"user","content":"hello world"}]}"#)
    );
    // Responses: an input string is one user message (its role implied); instructions one
    // system message.
    let responses = |b: &str| estimate_request(Format::Responses, b.as_bytes(), bpe(), usize::MAX);
    assert_eq!(
        responses(r#"{"model":"gpt","input":"hello world"}"#).unwrap(),
        3 + 3 + 2
    );
    assert_eq!(
        responses(r#"{"model":"gpt","instructions":"hello world","input":"hello world"}"#).unwrap(),
        3 + 3 + 2 + 3 + 2
    );
    let items = r#"{"model":"gpt","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hello world"}]},
        {"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
        {"type":"function_call_output","call_id":"call_1","output":"sunny"},
        {"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAAAABo-opaque-blob-that-is-not-text"}]}"#;
    let text = |s: &str| count_text(bpe(), s);
    assert_eq!(
        responses(items).unwrap(),
        3 + 4 * 3
            + text("user")
            + text("hello world")
            + text("get_weather")
            + text("{\"city\":\"Paris\"}")
            + text("sunny")
    );
    // Settings, ids and metadata are not prompt.
    let settings = r#"{"model":"gpt-4o-2024-08-06-with-a-long-name","temperature":0.2,"user":"someone with a long id",
        "metadata":{"team":"a very long team description that would count"},"tool_choice":"auto",
        "messages":[{"role":"user","content":"hello world"}]}"#;
    assert_eq!(est_openai(settings), chat);
}

#[test]
fn chat_images_files_and_tools_follow_the_published_rules() {
    let base = est_openai(r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#);
    let png = format!(
        "data:image/png;base64,{}",
        b64(&image::tests::png(1024, 1024))
    );
    let body = format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":[{{"type":"text","text":"hi"}},
            {{"type":"image_url","image_url":{{"url":"{png}","detail":"high"}}}},
            {{"type":"image_url","image_url":{{"url":"https://example.com/cat.png"}}}}]}}]}}"#
    );
    // 765 by the vision guide's worked example; a linked image at the rule's default.
    assert_eq!(
        est_openai(&body),
        base + 765 + image::unknown_image_tokens()
    );
    // A Responses input_image and input_file.
    let body = format!(
        r#"{{"model":"gpt","input":[{{"role":"user","content":[{{"type":"input_text","text":"hi"}},
            {{"type":"input_image","image_url":"{png}","detail":"auto"}},
            {{"type":"input_file","file_url":"https://example.com/a.pdf"}}]}}]}}"#
    );
    let n = estimate_request(Format::Responses, body.as_bytes(), bpe(), usize::MAX).unwrap();
    assert_eq!(n, base + 765 + pdf_tokens(0));
    // A tool: the cookbook's overheads, its name, description and schema's words.
    let tools = r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"tools":[
        {"type":"function","function":{"name":"get_weather","description":"Get the weather.",
         "parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}}]}"#;
    let text = |s: &str| count_text(bpe(), s);
    let schema = ["type", "object", "properties", "city", "type", "string"]
        .iter()
        .map(|s| text(s))
        .sum::<u64>();
    assert_eq!(
        est_openai(tools),
        base + FUNC_INIT_TOKENS
            + text("get_weather")
            + text("Get the weather.")
            + schema
            + FUNC_END_TOKENS
    );
}

/// Past its text budget the count goes on at the rate it measured, so a huge prompt costs the
/// tokenizer no more than the budget and still comes out close; with no budget at all, at one
/// token per 4 bytes. A body that is not JSON is an error, not a panic.
#[test]
fn a_text_budget_bounds_the_work_and_extrapolates() {
    let words = " word".repeat(20_000);
    let body = format!(r#"{{"model":"gpt","messages":[{{"role":"user","content":"{words}"}}]}}"#);
    let full = estimate_request(Format::OpenAi, body.as_bytes(), bpe(), usize::MAX).unwrap();
    assert_eq!(full, 3 + 3 + 1 + 20_000);
    let sampled = estimate_request(Format::OpenAi, body.as_bytes(), bpe(), 4096).unwrap();
    assert!(sampled.abs_diff(full) <= full / 100, "{sampled} vs {full}");
    let guessed = estimate_request(Format::OpenAi, body.as_bytes(), bpe(), 0).unwrap();
    assert_eq!(guessed, 3 + 3 + 1 + (words.len() as u64).div_ceil(4));
    // The Anthropic estimator takes the same budget.
    let messages = format!(
        r#"{{"model":"m","max_tokens":8,"messages":[{{"role":"user","content":"{words}"}}]}}"#
    );
    let a = estimate_request(Format::Anthropic, messages.as_bytes(), bpe(), 4096).unwrap();
    assert!(a.abs_diff(full) <= full / 100, "{a} vs {full}");
    for bad in ["", "{", "[1,2", r#"{"messages":[{"content":"x"}"#, "nope"] {
        assert!(estimate_request(Format::OpenAi, bad.as_bytes(), bpe(), usize::MAX).is_err());
    }
}

/// A body read again from the start (here: `tools` named twice, read typed the second time)
/// is counted as one read once: the whole text budget again, no rate from the first reading.
#[test]
fn a_body_read_again_counts_as_one_read_once() {
    let text = format!("{}{}", "word ".repeat(300), "多字节文本".repeat(100));
    let body = |tools: &str| {
        format!(
            r#"{{"model":"c","max_tokens":1,{tools}"messages":[{{"role":"user","content":"{text}"}}]}}"#
        )
    };
    // A budget the text fits in once but not twice.
    let once = estimate_anthropic_within(body(r#""tools":[],"#).as_bytes(), bpe(), 4000).unwrap();
    let twice =
        estimate_anthropic_within(body(r#""tools":[],"tools":[],"#).as_bytes(), bpe(), 4000)
            .unwrap();
    assert_eq!(twice, once);
}
