//! Golden replays: Java 5.3.3 exchanges and rocketmq-rust broker frames, byte for byte.

use super::*;

// ---------------------------------------------------------------------------------------
// Golden replays
// ---------------------------------------------------------------------------------------

/// End offset (exclusive) of the JSON value starting at `start`.
fn json_value_end(text: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = start;
    while i < text.len() {
        let c = text[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return i; // the end of the enclosing container
                    }
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    text.len()
}

/// The raw text of the value of the first `"key":` in `text`.
fn json_value_of<'a>(text: &'a str, key: &str) -> &'a str {
    let needle = format!("\"{key}\":");
    let at = text.find(&needle).unwrap_or_else(|| panic!("{key} not in {text}")) + needle.len();
    &text[at..json_value_end(text.as_bytes(), at)]
}

/// The raw texts of the elements of a JSON array given as raw text.
fn json_array_elements(array: &str) -> Vec<&str> {
    assert!(array.starts_with('[') && array.ends_with(']'), "not an array: {array}");
    let bytes = array.as_bytes();
    let mut out = Vec::new();
    let mut i = 1;
    while i < array.len() - 1 {
        let end = json_value_end(bytes, i);
        out.push(&array[i..end]);
        i = end + 1;
    }
    out
}

struct GoldenExchange {
    seq: u64,
    request: Vec<u8>,
    request_header: Value,
    response: Option<(Value, Vec<u8>)>,
}

fn golden_exchanges(file: &str) -> Vec<GoldenExchange> {
    golden_lines(file)
        .into_iter()
        .map(|line| {
            let request = hex_decode(line["request_hex"].as_str().expect("request_hex"));
            let (request_type, request_header, _) = split_frame(&request);
            let response = line["response_hex"].as_str().map(|h| {
                let (t, header, body) = split_frame(&hex_decode(h));
                (header_json(t, &header), body)
            });
            GoldenExchange {
                seq: line["seq"].as_u64().expect("seq"),
                request_header: header_json(request_type, &request_header),
                request,
                response,
            }
        })
        .collect()
}

fn request_code(exchange: &GoldenExchange) -> i32 {
    exchange.request_header["code"].as_i64().expect("code") as i32
}

/// Writes the golden request frame unchanged; reads the answer unless it is oneway.
fn replay(conn: &mut Client, exchange: &GoldenExchange) -> Option<meridian_testkit::Reply> {
    conn.write_raw(&exchange.request).expect("writing a golden frame");
    let flag = exchange.request_header["flag"].as_i64().unwrap_or(0) as i32;
    if flag & FLAG_ONEWAY != 0 {
        return None;
    }
    let reply = conn.read_reply().unwrap_or_else(|e| panic!("seq {}: no answer: {e}", exchange.seq));
    assert_eq!(reply.header["opaque"], exchange.request_header["opaque"], "seq {}: opaque", exchange.seq);
    Some(reply)
}

#[test]
fn golden_java_replay() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let exchanges = golden_exchanges(JAVA_GOLDEN);
    let broker_name = exchanges[1].request_header["extFields"]["brokerName"].as_str().expect("seq 2 brokerName");
    let tag = broker_name.strip_suffix("-bA").expect("golden broker names end in -bA");
    let cluster = format!("{tag}-c1");
    let selected = exchanges.iter().filter(|e| (1..=17).contains(&e.seq) || (35..=41).contains(&e.seq));
    let mut replayed = 0;
    for exchange in selected {
        let code = request_code(exchange);
        let java_code = exchange.response.as_ref().map(|(h, _)| h["code"].as_i64().expect("code"));
        if !SERVED_CODES.contains(&code) && java_code.is_some_and(|c| c != 3) {
            continue; // not served by Meridian yet (901)
        }
        replayed += 1;
        let reply = replay(&mut conn, exchange);
        let Some((java_header, java_body)) = &exchange.response else {
            assert!(reply.is_none());
            continue;
        };
        let reply = reply.expect("a two-way request gets an answer");
        let seq = exchange.seq;
        assert_eq!(reply.header_without_opaque(), without_opaque(java_header), "seq {seq}: header");
        let java_text = String::from_utf8(java_body.clone()).expect("golden bodies are UTF-8");
        let expected = match seq {
            // Routes of a topic shared with bB, whose registration is not in the file:
            // Java's bA entries, and nothing else.
            5..=7 => {
                let pick = |key: &str| -> String {
                    let elements: Vec<&str> = json_array_elements(json_value_of(&java_text, key))
                        .into_iter()
                        .filter(|e| e.contains(&format!("\"brokerName\":\"{broker_name}\"")))
                        .collect();
                    assert_eq!(elements.len(), 1, "seq {seq}: {key} of {broker_name} in {java_text}");
                    elements[0].to_string()
                };
                route_json(&[pick("brokerDatas")], &[pick("queueDatas")])
            }
            // Cluster info with brokers registered elsewhere: Java's bA entry, and c1 = [bA].
            13 | 41 => {
                let broker_table = json_value_of(&java_text, "brokerAddrTable");
                let entry = json_value_of(broker_table, broker_name);
                format!(
                    r#"{{"brokerAddrTable":{{"{broker_name}":{entry}}},"clusterAddrTable":{{"{cluster}":["{broker_name}"]}}}}"#
                )
            }
            _ => java_text,
        };
        assert_eq!(reply.body_text(), expected, "seq {seq}: body");
    }
    assert_eq!(replayed, 22, "exchanges replayed (1–17 and 35–41 minus the two 901s)");
}

#[test]
fn golden_rocketmq_rust_broker_frames_are_accepted() {
    let server = common::server(&[]);
    let mut client = server.client();
    let exchanges = golden_exchanges(RUST_BROKER_GOLDEN);
    let java_answers = golden_exchanges(RUST_BROKER_ON_JAVA_GOLDEN);
    assert_eq!(exchanges.len(), 12);
    // One connection per broker run, as captured.
    for (run, topic_name) in [(1..=6, "GoldenTopicPlain"), (7..=12, "GoldenTopicZip")] {
        let mut conn = server.client();
        for exchange in exchanges.iter().filter(|e| run.contains(&e.seq)) {
            let seq = exchange.seq;
            let reply = replay(&mut conn, exchange).expect("the broker frames are two-way");
            let java = &java_answers[seq as usize - 1];
            let (java_header, _) = java.response.as_ref().expect("Java answered every frame");
            let expected = if java_header["code"] == 0 {
                without_opaque(java_header)
            } else {
                // Java 5.3.3 cannot inflate raw deflate; Meridian must (golden/README.md).
                java_register_header(0, json!({}), None)
            };
            assert_eq!(reply.header_without_opaque(), expected, "seq {seq}: header");
            assert!(reply.body.is_empty(), "seq {seq}: body {}", reply.body_text());
            match request_code(exchange) {
                REGISTER_TOPIC_IN_NAMESRV if seq == 2 || seq == 8 => {
                    assert_eq!(route_code(&mut client, topic_name), 0, "seq {seq}: {topic_name} after 217");
                }
                UNREGISTER_BROKER => {
                    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, topic_name) == 17), "seq {seq}");
                }
                _ => {}
            }
        }
    }
    assert_eq!(cluster_info(&mut client), EMPTY_CLUSTER_INFO);
}
