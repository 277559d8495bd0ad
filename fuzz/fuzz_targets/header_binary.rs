//! ROCKETMQ binary headers: never a panic, whatever the declared lengths.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meridian_protocol::frame::SerializeType;
use meridian_protocol::header::Header;

fuzz_target!(|data: &[u8]| {
    let _ = Header::decode(SerializeType::RocketMq, data);
});
