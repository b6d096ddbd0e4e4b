//! Windows' service control manager: `poussr service install|uninstall|start|stop`, and the service's own
//! run (`poussr service run`, started by the service manager). What is decided is in [`crate::service`];
//! this module only carries it out.

use std::ffi::OsString;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceInfo,
    ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::ending::Ending;
use crate::service::{self, Control, Phase, Plan, Reply, Report};

/// [`service::explain`] for the crate's errors.
fn explain(action: &str, e: &windows_service::Error) -> String {
    let code = match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    };
    service::explain(action, code, &e.to_string())
}

/// How long `start`, `stop` and `uninstall` wait for the service to get where they asked.
const WAIT: Duration = Duration::from_secs(30);

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, String> {
    ServiceManager::local_computer(None::<&str>, access).map_err(|e| explain("reach the service manager", &e))
}

fn open(access: ServiceAccess) -> Result<windows_service::service::Service, String> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(service::NAME, access)
        .map_err(|e| explain("open the service", &e))
}

/// `icacls.exe` of this Windows, by its full path (a program found by search could be anyone's).
fn icacls() -> std::path::PathBuf {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    std::path::Path::new(&root).join("System32").join("icacls.exe")
}

/// Registers the service of `plan` (automatic start, LocalService): copies the program to its folder, makes
/// the data folder and makes it the service's own. Returns what to tell the operator.
pub fn install(plan: &Plan) -> Result<String, String> {
    let manager = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
    if let Ok(found) = manager.open_service(service::NAME, ServiceAccess::QUERY_STATUS) {
        drop(found);
        return Err(service::explain("install", Some(1073), ""));
    }
    if let Some(folder) = plan.executable.parent() {
        std::fs::create_dir_all(folder).map_err(|e| format!("cannot make {}: {e}", folder.display()))?;
    }
    if !same_file(&plan.source, &plan.executable) {
        std::fs::copy(&plan.source, &plan.executable)
            .map_err(|e| format!("cannot copy the program to {}: {e}", plan.executable.display()))?;
    }
    let info = ServiceInfo {
        name: service::NAME.into(),
        display_name: service::DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: plan.executable.clone(),
        launch_arguments: plan.arguments.clone(),
        dependencies: vec![],
        account_name: Some(service::ACCOUNT.into()),
        account_password: None,
    };
    let created = manager.create_service(&info, ServiceAccess::CHANGE_CONFIG).map_err(|e| explain("install", &e))?;
    if let Err(e) = created.set_description(service::DESCRIPTION) {
        tracing::warn!("the service's description was not set: {e}");
    }
    std::fs::create_dir_all(&plan.data_dir)
        .map_err(|e| format!("cannot make the data folder {}: {e}", plan.data_dir.display()))?;
    let mut note = service::installed_note(plan);
    // LocalService may not write in %ProgramData% by default, and every user may read there: make the data
    // folder (and what is made in it) the service's and the administrators' only.
    let grant = std::process::Command::new(icacls()).args(service::data_dir_acl(&plan.data_dir)).output();
    match grant {
        Ok(out) if out.status.success() => {}
        Ok(out) => note += &service::grant_failed_note(plan, &String::from_utf8_lossy(&out.stderr)),
        Err(e) => note += &service::grant_failed_note(plan, &e.to_string()),
    }
    Ok(note)
}

/// Stops the service if it runs, then removes it and its program's copy. Its data folder stays.
pub fn uninstall(program: &std::path::Path) -> Result<String, String> {
    let found = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    stop_and_wait(&found)?;
    found.delete().map_err(|e| explain("uninstall", &e))?;
    drop(found);
    // The service's process may take a moment to exit after it reported Stopped; its program is in use until then.
    let deadline = Instant::now() + WAIT;
    let removed = loop {
        match std::fs::remove_file(program) {
            Ok(()) => break true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break true,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                tracing::warn!("cannot remove {}: {e}", program.display());
                break false;
            }
        }
    };
    if let Some(folder) = program.parent() {
        let _ = std::fs::remove_dir(folder);
    }
    let mut note = format!("The {} service is removed. Its data folder was left as it was.\n", service::NAME);
    if !removed {
        note += &format!("Its program {} is still in use; delete it later.\n", program.display());
    }
    Ok(note)
}

/// Whether `a` and `b` are the same file (the service is installed from its own copy).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Starts the service and waits until it serves.
pub fn start() -> Result<String, String> {
    let found = open(ServiceAccess::QUERY_STATUS | ServiceAccess::START)?;
    found.start::<OsString>(&[]).map_err(|e| explain("start", &e))?;
    match wait_for(&found, |s| s != ServiceState::StartPending)? {
        ServiceState::Running => Ok(format!("The {} service is running.\n", service::NAME)),
        other => Err(format!(
            "the {} service did not start (it is {other:?}); see poussr.log in its data folder",
            service::NAME
        )),
    }
}

/// Stops the service (clients are closed with 4200) and waits until it has stopped.
pub fn stop() -> Result<String, String> {
    let found = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?;
    if found.query_status().map_err(|e| explain("stop", &e))?.current_state == ServiceState::Stopped {
        return Err(format!("the {} service is not running", service::NAME));
    }
    stop_and_wait(&found)?;
    Ok(format!("The {} service is stopped.\n", service::NAME))
}

fn stop_and_wait(found: &windows_service::service::Service) -> Result<(), String> {
    let state = found.query_status().map_err(|e| explain("stop", &e))?.current_state;
    if state == ServiceState::Stopped {
        return Ok(());
    }
    if state != ServiceState::StopPending {
        found.stop().map_err(|e| explain("stop", &e))?;
    }
    match wait_for(found, |s| s == ServiceState::Stopped)? {
        ServiceState::Stopped => Ok(()),
        other => {
            Err(format!("the {} service did not stop within {} s (it is {other:?})", service::NAME, WAIT.as_secs()))
        }
    }
}

/// Polls the service's state until `done` says so or [`WAIT`] has passed; returns the last state seen.
fn wait_for(
    found: &windows_service::service::Service,
    done: impl Fn(ServiceState) -> bool,
) -> Result<ServiceState, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = found.query_status().map_err(|e| explain("ask the service's state", &e))?.current_state;
        if done(state) || Instant::now() >= deadline {
            return Ok(state);
        }
        // The service manager has no notification a plain program can wait on without a callback thread;
        // it documents polling with a short interval.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the service runs, handed from [`run`] to the service manager's thread.
type Serve = Box<dyn FnOnce(Ending, &dyn Fn()) -> Result<(), String> + Send>;
static SERVE: Mutex<Option<Serve>> = Mutex::new(None);
static RESULT: Mutex<Option<Result<(), String>>> = Mutex::new(None);

/// Runs `serve` as the service: call it from `poussr service run`, which the service manager starts.
/// `serve` gets the run's [`Ending`] (ended by Stop and Shutdown) and a function to call once it is serving.
pub fn run(serve: impl FnOnce(Ending, &dyn Fn()) -> Result<(), String> + Send + 'static) -> Result<(), String> {
    *SERVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(serve));
    service_dispatcher::start(service::NAME, ffi_service_main).map_err(|e| match &e {
        windows_service::Error::Winapi(io) if io.raw_os_error() == Some(1063) => {
            "`poussr service run` is what Windows' service manager starts; to run the hub in this console, use \
             `poussr serve`"
                .to_owned()
        }
        _ => explain("run as a service", &e),
    })?;
    RESULT.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or(Ok(()))
}

// The service manager calls this entry point (on a thread of its own) with the service's start arguments,
// which Poussr does not use: its flags are on the command line.
windows_service::define_windows_service!(ffi_service_main, service_main_entry);

fn service_main_entry(_arguments: Vec<OsString>) {
    service_main();
}

fn service_main() {
    let Some(serve) = SERVE.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
    let ending = Ending::new();
    let scm = Scm::default();
    let handler = {
        let (ending, scm) = (ending.clone(), scm.clone());
        move |control: ServiceControl| {
            let control = match control {
                ServiceControl::Stop => Control::Stop,
                ServiceControl::Shutdown => Control::Shutdown,
                ServiceControl::Preshutdown => Control::Preshutdown,
                ServiceControl::Interrogate => Control::Interrogate,
                _ => Control::Other,
            };
            match service::on_control(control, &ending, &scm) {
                Reply::Done => ServiceControlHandlerResult::NoError,
                Reply::NotImplemented => ServiceControlHandlerResult::NotImplemented,
            }
        }
    };
    match service_control_handler::register(service::NAME, handler) {
        Ok(handle) => {
            let _ = scm.handle.set(handle);
        }
        Err(e) => {
            *RESULT.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Err(explain("register with the service manager", &e)));
            return;
        }
    }
    let result = service::lifecycle(&scm, &ending, serve);
    *RESULT.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
}

/// Reports phases to the service manager once the control handler is registered.
#[derive(Clone, Default)]
struct Scm {
    handle: Arc<OnceLock<ServiceStatusHandle>>,
    /// The pending phases' checkpoint, and whether Stopped was reported (nothing may follow it).
    state: Arc<Mutex<(u32, bool)>>,
}

impl Report for Scm {
    fn report(&self, phase: Phase) {
        let Some(handle) = self.handle.get() else { return };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (checkpoint, stopped) = &mut *state;
        if *stopped {
            return;
        }
        *stopped = matches!(phase, Phase::Stopped { .. });
        let (state, accept, wait, exit) = match phase {
            Phase::Starting => (ServiceState::StartPending, ServiceControlAccept::empty(), 30, 0),
            Phase::Running => (
                ServiceState::Running,
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN | ServiceControlAccept::PRESHUTDOWN,
                0,
                0,
            ),
            Phase::Stopping => (ServiceState::StopPending, ServiceControlAccept::empty(), 15, 0),
            Phase::Stopped { failed } => (ServiceState::Stopped, ServiceControlAccept::empty(), 0, u32::from(failed)),
        };
        // Pending phases count up; the others report 0, as the service manager expects.
        *checkpoint = if wait > 0 { *checkpoint + 1 } else { 0 };
        let status = ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: if exit == 0 { ServiceExitCode::NO_ERROR } else { ServiceExitCode::ServiceSpecific(exit) },
            checkpoint: *checkpoint,
            wait_hint: Duration::from_secs(wait),
            process_id: None,
        };
        if let Err(e) = handle.set_service_status(status) {
            tracing::warn!("cannot report the service's state ({phase:?}): {e}");
        }
    }
}
