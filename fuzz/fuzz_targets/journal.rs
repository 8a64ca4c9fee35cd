#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sqlite_rescue_fuzz::journal(data);
    let _ = sqlite_rescue_fuzz::journal_on_disk(data);
});
