//! The service's decisions, tested on every platform (and, built for Windows, under Wine).

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::*;

/// A folder that is absolute on this platform (`C:\…` on Windows, `/…` elsewhere).
fn root(parts: &[&str]) -> PathBuf {
    let mut path = if cfg!(windows) { PathBuf::from(r"C:\") } else { PathBuf::from("/") };
    for part in parts {
        path.push(part);
    }
    path
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn the_service_runs_service_run_with_the_serve_flags_and_a_data_folder_under_program_data() {
    let exe = root(&["Users", "José", "AppData", "Local", "Programs", "Poussr", "poussr.exe"]);
    let args = os(&["--port", "7000"]);
    let plan = plan(&exe, &args, &root(&["Users", "op"]), &root(&["ProgramData"]), &root(&["Program Files"])).unwrap();
    // The service runs an administrators-only copy, not the user's own file.
    assert_eq!(plan.source, exe);
    assert_eq!(plan.executable, root(&["Program Files", "Poussr", "poussr.exe"]));
    let data = root(&["ProgramData", "Poussr"]);
    assert_eq!(plan.data_dir, data);
    let mut expected = os(&["service", "run", "--port", "7000", "--data-dir"]);
    expected.push(data.into_os_string());
    assert_eq!(plan.arguments, expected);
}

#[test]
fn relative_paths_are_made_absolute_from_where_install_was_run_in_both_flag_forms() {
    // A service starts in C:\Windows\System32: a relative path would point there.
    let cwd = root(&["Users", "José Müller", "hub files"]);
    let args = os(&["--config", "poussr.toml", "--tls-cert=certs/cert 1.pem", "--tls-key", "certs/key.pem"]);
    let plan = plan(&root(&["poussr.exe"]), &args, &cwd, &root(&["ProgramData"]), &root(&["PF"])).unwrap();
    let a = &plan.arguments;
    assert_eq!(a[2], "--config");
    assert_eq!(Path::new(&a[3]), cwd.join("poussr.toml"));
    let mut cert = OsString::from("--tls-cert=");
    cert.push(cwd.join("certs/cert 1.pem"));
    assert_eq!(a[4], cert);
    assert_eq!(a[5], "--tls-key");
    assert_eq!(Path::new(&a[6]), cwd.join("certs/key.pem"));
}

#[test]
fn a_given_data_folder_is_used_as_given_with_spaces_and_non_ascii_letters_in_one_argument() {
    let data = root(&["Données partagées", "東京 hub"]);
    let mut args = os(&["--data-dir"]);
    args.push(data.clone().into_os_string());
    let plan = plan(&root(&["poussr.exe"]), &args, &root(&["x"]), &root(&["ProgramData"]), &root(&["PF"])).unwrap();
    assert_eq!(plan.data_dir, data);
    assert_eq!(plan.arguments.len(), 4, "no extra --data-dir: {:?}", plan.arguments);
    assert_eq!(plan.arguments[3], data.into_os_string());
    // The --flag=value form names it too.
    let given = format!("--data-dir={}", root(&["d"]).display());
    let plan =
        super::plan(&root(&["poussr.exe"]), &os(&[&given]), &root(&["x"]), &root(&["P"]), &root(&["F"])).unwrap();
    assert_eq!(plan.data_dir, root(&["d"]));
    assert_eq!(plan.arguments.len(), 3);
}

#[test]
fn a_path_flag_without_its_value_and_a_relative_program_are_refused() {
    let err = plan(&root(&["poussr.exe"]), &os(&["--config"]), &root(&[]), &root(&["P"]), &root(&["F"])).unwrap_err();
    assert!(err.contains("--config needs a value"), "{err}");
    let err = plan(Path::new("poussr.exe"), &[], &root(&[]), &root(&["P"]), &root(&["F"])).unwrap_err();
    assert!(err.contains("full path"), "{err}");
}

/// The phases, in the order they were reported.
#[derive(Default)]
struct Recorded(RefCell<Vec<Phase>>);

impl Report for Recorded {
    fn report(&self, phase: Phase) {
        self.0.borrow_mut().push(phase);
    }
}

#[test]
fn stop_ends_the_run_reports_stopping_once_and_later_controls_change_nothing() {
    let ending = Ending::new();
    let recorded = Recorded::default();
    assert_eq!(on_control(Control::Interrogate, &ending, &recorded), Reply::Done);
    assert_eq!(on_control(Control::Other, &ending, &recorded), Reply::NotImplemented);
    assert_eq!(ending.reason(), None, "neither ends the run");
    assert_eq!(on_control(Control::Stop, &ending, &recorded), Reply::Done);
    assert_eq!(ending.reason(), Some(EndReason::ServiceStop));
    assert_eq!(on_control(Control::Shutdown, &ending, &recorded), Reply::Done);
    assert_eq!(ending.reason(), Some(EndReason::ServiceStop), "the first reason stays");
    assert_eq!(*recorded.0.borrow(), vec![Phase::Stopping]);
}

#[test]
fn shutdown_and_preshutdown_end_the_run_as_a_system_shutdown() {
    for control in [Control::Shutdown, Control::Preshutdown] {
        let ending = Ending::new();
        assert_eq!(on_control(control, &ending, &Recorded::default()), Reply::Done);
        assert_eq!(ending.reason(), Some(EndReason::Shutdown));
    }
}

#[test]
fn the_lifecycle_reports_starting_running_then_stopped_and_a_failure_as_failed() {
    let ending = Ending::new();
    let recorded = Recorded::default();
    let result = lifecycle(&recorded, &ending, |run, ready| {
        ready();
        // The service manager's Stop, while serving.
        on_control(Control::Stop, &run, &recorded);
        assert_eq!(run.reason(), Some(EndReason::ServiceStop));
        Ok(())
    });
    assert_eq!(result, Ok(()));
    let expected = [Phase::Starting, Phase::Running, Phase::Stopping, Phase::Stopped { failed: false }];
    assert_eq!(*recorded.0.borrow(), expected);

    let recorded = Recorded::default();
    let result = lifecycle(&recorded, &Ending::new(), |_, _| Err("cannot listen on 0.0.0.0:6001".into()));
    assert!(result.is_err());
    assert_eq!(*recorded.0.borrow(), vec![Phase::Starting, Phase::Stopped { failed: true }]);
}

#[test]
fn the_data_folder_is_kept_from_other_users() {
    let dir = root(&["ProgramData", "Poussr"]);
    let args: Vec<String> = data_dir_acl(&dir).iter().map(|a| a.to_string_lossy().into_owned()).collect();
    assert_eq!(args[0], dir.display().to_string());
    // Nothing inherited from %ProgramData% (which lets every user read), and the grants replace any others.
    assert_eq!(&args[1..3], ["/inheritance:r", "/grant:r"]);
    // SYSTEM and Administrators in full, LocalService may write: by SID, so in every Windows language.
    assert_eq!(&args[3..6], ["*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F", "*S-1-5-19:(OI)(CI)M"]);
}

#[test]
fn refusals_say_what_to_do() {
    let denied = explain("install", Some(5), "Access is denied. (os error 5)");
    assert!(
        denied.starts_with("cannot install: access is denied") && denied.contains("Run as administrator"),
        "{denied}"
    );
    assert!(explain("start", Some(1060), "").contains("poussr service install"));
    assert!(explain("install", Some(1073), "").contains("poussr service uninstall"));
    // A code with no advice of its own keeps the system's text.
    assert_eq!(explain("stop", Some(1234), "some system text"), "cannot stop: some system text");
}

#[test]
fn the_install_note_names_the_command_line_and_the_data_folder() {
    let data = root(&["ProgramData", "Poussr"]);
    let mut arguments = os(&["service", "run", "--data-dir"]);
    arguments.push(data.clone().into_os_string());
    let plan = Plan {
        source: root(&["src", "poussr.exe"]),
        executable: root(&["p q", "poussr.exe"]),
        arguments,
        data_dir: data.clone(),
    };
    let note = installed_note(&plan);
    // A path with a space is quoted, as a command prompt needs it.
    let exe = root(&["p q", "poussr.exe"]).display().to_string();
    assert!(note.contains(&format!("\"{exe}\" service run --data-dir {}", data.display())), "{note}");
    assert!(note.contains(&data.display().to_string()) && note.contains("credentials.toml"), "{note}");
    let warning = grant_failed_note(&plan, "stub\n");
    assert!(warning.contains("(stub)") && warning.contains("icacls"), "{warning}");
}
