//! `BusConfig::from_env` reads the `EVENT_BUS_*` variables of the process: checked in child
//! processes (this test binary run again with the variables set), so that the test process's
//! own environment is never changed while other tests run.

#![cfg(feature = "bus")]

use std::process::Command;

use evlog::bus::BusConfig;

const CHILD: &str = "child_prints_the_config_from_its_environment";

/// Runs this binary's child test with `vars`; returns what it printed.
fn child(vars: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        CHILD,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for var in [
        "EVENT_BUS_MAX_RETRIES",
        "EVENT_BUS_RETRY_DELAY_MS",
        "EVENT_BUS_MAX_RETRY_DELAY_MS",
        "EVENT_BUS_DEAD_LETTER_ENABLED",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.split_once("BUS-CONFIG ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no config line in {stdout}"))
        .to_owned()
}

#[test]
#[ignore = "run in a child process by the tests below"]
fn child_prints_the_config_from_its_environment() {
    match BusConfig::from_env() {
        Ok(c) => println!("BUS-CONFIG ok {c:?}"),
        Err(e) => println!("BUS-CONFIG error {e}"),
    }
}

#[test]
fn the_variables_of_the_environment_set_the_config() {
    let want = BusConfig::default()
        .max_retries(5)
        .retry_delay_ms(250)
        .dead_letter_enabled(false);
    assert_eq!(
        child(&[
            ("EVENT_BUS_MAX_RETRIES", "5"),
            ("EVENT_BUS_RETRY_DELAY_MS", "250"),
            ("EVENT_BUS_DEAD_LETTER_ENABLED", "false"),
        ]),
        format!("ok {want:?}")
    );
    assert_eq!(child(&[]), format!("ok {:?}", BusConfig::default()));
}

#[test]
fn a_bad_value_is_an_error_naming_the_variable() {
    let out = child(&[("EVENT_BUS_RETRY_DELAY_MS", "1s")]);
    assert!(
        out.starts_with("error EVENT_BUS_RETRY_DELAY_MS=\"1s\" is not valid"),
        "{out}"
    );
    let out = child(&[("EVENT_BUS_DEAD_LETTER_ENABLED", "sometimes")]);
    assert!(out.contains("expected true or false"), "{out}");
}
