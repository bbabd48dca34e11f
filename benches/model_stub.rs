//! Completions per second of the sandbox's model stub for a typical 200-character prompt: parse
//! the request body, answer it and serialize the response, on one core. The stub must never be
//! what limits a gateway serving thousands of requests a second.
//!
//! Run: `cargo bench --bench model_stub` (the `thrpt` line is completions/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

use provision::sandbox::inference::model::{complete, parse_request};

fn bench(c: &mut Criterion) {
    let prompt = "Summarise the attached incident report for the on-call channel: which service \
                  failed, when it started, what the customer impact was, and the single next \
                  step the owning team has committed to by Friday";
    assert_eq!(prompt.len(), 200);
    let body = json!({
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": 256,
    })
    .to_string();
    let mut group = c.benchmark_group("model_stub");
    group.throughput(Throughput::Elements(1));
    group.bench_function("completion_200_char_prompt", |b| {
        b.iter(|| {
            let request = parse_request(body.as_bytes()).unwrap();
            complete(&request, "gpt-5.6-luna-2026-07-09", 1_800_000_000).response()
        })
    });
    group.bench_function("streamed_completion_200_char_prompt", |b| {
        b.iter(|| {
            let request = parse_request(body.as_bytes()).unwrap();
            complete(&request, "gpt-5.6-luna-2026-07-09", 1_800_000_000).stream(true)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
