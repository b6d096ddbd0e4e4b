; Poussr's Windows installer, compiled by makensis (scripts/windows.sh; `make windows`).
;
; Per user, with no administrator rights: the program goes to %LOCALAPPDATA%\Programs\Poussr, its shortcuts
; to the user's Start menu (and desktop, if chosen), its uninstaller into "Apps" (HKCU). Only the optional
; Windows Firewall rule needs an administrator, and asks for one (UAC) for that step alone.
; The operator's settings and data (%APPDATA%\Poussr) stay on uninstall unless asked for.
;
; makensis -DVERSION=x.y.z -DSTAGE=<folder with the files> -DOUTFILE=<setup.exe> poussr.nsi
; STAGE holds poussr-desktop.exe (the tray), poussr-window.exe (its window, which the tray starts), poussr.exe,
; WebView2Loader.dll, LICENSE.txt and poussr.ico.

Unicode true
Target amd64-unicode
SetCompressor /SOLID lzma
RequestExecutionLevel user
ManifestDPIAware true

!ifndef VERSION
  !error "pass -DVERSION=, -DSTAGE= and -DOUTFILE= (see scripts/windows.sh)"
!endif
!ifndef STAGE
  !error "pass -DSTAGE=, the folder of the files to install (see scripts/windows.sh)"
!endif
!ifndef OUTFILE
  !error "pass -DOUTFILE=, the installer to write (see scripts/windows.sh)"
!endif

!define APP "Poussr"
!define EXE "poussr-desktop.exe"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP}"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
; Where the installer remembers what it did (the firewall rule), to undo exactly that.
!define STATE_KEY "Software\${APP}\Installer"
; The WebView2 runtime's client id (Microsoft's documented way to detect an installed runtime).
!define WEBVIEW2_ID "{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
!define FIREWALL_RULE "Poussr (LAN clients)"

Name "${APP}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\${APP}"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${APP} ${VERSION}"
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP} setup: a real-time push hub for offline networks"
VIAddVersionKey "LegalCopyright" "Poussr contributors (MIT licence)"

!include "MUI2.nsh"
!include "LogicLib.nsh"
!include "FileFunc.nsh"

!define MUI_ICON "${STAGE}\poussr.ico"
!define MUI_UNICON "${STAGE}\poussr.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_SMALLDESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\${EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP} now"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_LICENSE "${STAGE}\LICENSE.txt"
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"

; ---------------------------------------------------------------------------------------------------------
; A running Poussr holds its files and its port: ask it to quit as its tray menu's Quit does (clients are
; closed with 4200 and reconnect to the new one), then wait until both programs can be replaced (a
; `poussr.exe serve` started from this folder holds poussr.exe). $R9 says whether the tray app was running.
!macro QuitRunningPoussr un
Function ${un}QuitRunningPoussr
  StrCpy $R9 0
  IfFileExists "$INSTDIR\${EXE}" 0 done
  ClearErrors
  FileOpen $0 "$INSTDIR\${EXE}" a
  ${If} ${Errors}
    StrCpy $R9 1
  ${Else}
    FileClose $0
  ${EndIf}
  ExecWait '"$INSTDIR\${EXE}" --quit'
  StrCpy $1 0
  retry:
    ClearErrors
    FileOpen $0 "$INSTDIR\${EXE}" a
    ${IfNot} ${Errors}
      FileClose $0
      ${IfNot} ${FileExists} "$INSTDIR\poussr.exe"
        Goto done
      ${EndIf}
      ClearErrors
      FileOpen $0 "$INSTDIR\poussr.exe" a
      ${IfNot} ${Errors}
        FileClose $0
        Goto done
      ${EndIf}
    ${EndIf}
    IntOp $1 $1 + 1
    ${If} $1 < 50
      Sleep 200
      Goto retry
    ${EndIf}
    MessageBox MB_RETRYCANCEL|MB_ICONEXCLAMATION \
      "${APP} is still running. Quit it from its icon in the notification area (Quit), and stop any \
      poussr.exe started from $INSTDIR, then press Retry." \
      /SD IDCANCEL IDRETRY again
    Abort
  again:
    StrCpy $1 0
    Goto retry
  done:
FunctionEnd
!macroend
!insertmacro QuitRunningPoussr ""
!insertmacro QuitRunningPoussr "un."

; The window needs the Microsoft Edge WebView2 runtime (part of Windows 10 and 11). Without it the hub
; still serves, but the window cannot open: say so, and how to get it on a machine with no Internet.
Function CheckWebView2
  ReadRegStr $0 HKLM "SOFTWARE\WOW6432Node\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_ID}" "pv"
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    ReadRegStr $0 HKCU "Software\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_ID}" "pv"
  ${EndIf}
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    MessageBox MB_YESNO|MB_ICONEXCLAMATION \
      "${APP}'s window needs the Microsoft Edge WebView2 Runtime, which Windows 10 and 11 include but this \
      machine lacks.$\r$\n$\r$\nOn a machine with Internet, download the Evergreen Standalone Installer \
      (x64) from developer.microsoft.com/microsoft-edge/webview2, bring it here (a USB stick will do) and \
      run it, then open ${APP} again. The hub serves LAN clients without it; only the window needs it.\
      $\r$\n$\r$\nInstall ${APP} anyway?" /SD IDYES IDYES +2
    Abort
    DetailPrint "WebView2 runtime: missing (the window will not open until it is installed)"
  ${Else}
    DetailPrint "WebView2 runtime: $0"
  ${EndIf}
FunctionEnd

Function .onInit
  SetShellVarContext current
  Call CheckWebView2
FunctionEnd

Section "${APP}" SecMain
  SectionIn RO
  Call QuitRunningPoussr
  SetOutPath "$INSTDIR"
  File "${STAGE}\${EXE}"
  File "${STAGE}\poussr-window.exe"
  File "${STAGE}\poussr.exe"
  File "${STAGE}\WebView2Loader.dll"
  File "${STAGE}\LICENSE.txt"
  File "${STAGE}\poussr.ico"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortCut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\${EXE}" "" "$INSTDIR\poussr.ico"

  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "Poussr contributors"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\poussr.ico"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" $0
SectionEnd

Section "Desktop shortcut" SecDesktop
  CreateShortCut "$DESKTOP\${APP}.lnk" "$INSTDIR\${EXE}" "" "$INSTDIR\poussr.ico"
SectionEnd

; On by default: Poussr is the LAN's hub, so it should be there after a reboot. It starts hidden, in the tray.
Section "Start ${APP} when I sign in" SecAutostart
  WriteRegStr HKCU "${RUN_KEY}" "${APP}" '"$INSTDIR\${EXE}" --hidden'
SectionEnd

; Without a rule, Windows asks the first time Poussr listens on the network; a user who is not an
; administrator cannot allow it there, and dismissing that prompt blocks the port for LAN clients.
Section "Let LAN clients in through Windows Firewall (private networks; asks for an administrator)" SecFirewall
  nsExec::ExecToStack '"$SYSDIR\netsh.exe" advfirewall firewall show rule name="${FIREWALL_RULE}"'
  Pop $0
  Pop $1
  ${If} $0 == 0
    DetailPrint "Windows Firewall: the rule '${FIREWALL_RULE}' is already there"
  ${ElseIf} ${Silent}
    ; A silent install runs unattended: no administrator prompt. Deployment tools add the rule themselves
    ; (the netsh command is in docs/windows.md).
    DetailPrint "Windows Firewall: no rule added (silent install)"
  ${Else}
    DetailPrint "Adding the Windows Firewall rule '${FIREWALL_RULE}' for private networks (Windows asks for an administrator)"
    ExecShellWait "runas" "$SYSDIR\netsh.exe" 'advfirewall firewall add rule name="${FIREWALL_RULE}" dir=in action=allow program="$INSTDIR\${EXE}" profile=private enable=yes' SW_HIDE
    nsExec::ExecToStack '"$SYSDIR\netsh.exe" advfirewall firewall show rule name="${FIREWALL_RULE}"'
    Pop $0
    Pop $1
    ${If} $0 == 0
      WriteRegDWORD HKCU "${STATE_KEY}" "FirewallRule" 1
      DetailPrint "Windows Firewall: LAN clients on private networks may connect to ${APP}"
    ${Else}
      DetailPrint "Windows Firewall: no rule was added; Windows will ask the first time ${APP} listens"
    ${EndIf}
  ${EndIf}
SectionEnd

; A silent upgrade puts back what it found: a tray app that was running is started again (hidden). An
; interactive install offers "Start Poussr now" on its last page instead.
Section "-Restart" SecRestart
  ${If} ${Silent}
  ${AndIf} $R9 == 1
    Exec '"$INSTDIR\${EXE}" --hidden'
  ${EndIf}
SectionEnd

LangString DESC_SecMain ${LANG_ENGLISH} "The tray app, the headless poussr.exe (serve, service), and a Start-menu shortcut."
LangString DESC_SecDesktop ${LANG_ENGLISH} "A shortcut on the desktop."
LangString DESC_SecAutostart ${LANG_ENGLISH} "Start ${APP} hidden in the notification area when you sign in, so the hub is up after a reboot."
LangString DESC_SecFirewall ${LANG_ENGLISH} "An inbound rule for ${APP} on private networks, so that devices on the LAN can connect. Windows asks for an administrator for this step."
!insertmacro MUI_FUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${SecMain} $(DESC_SecMain)
  !insertmacro MUI_DESCRIPTION_TEXT ${SecDesktop} $(DESC_SecDesktop)
  !insertmacro MUI_DESCRIPTION_TEXT ${SecAutostart} $(DESC_SecAutostart)
  !insertmacro MUI_DESCRIPTION_TEXT ${SecFirewall} $(DESC_SecFirewall)
!insertmacro MUI_FUNCTION_DESCRIPTION_END

; ---------------------------------------------------------------------------------------------------------
Function un.onInit
  SetShellVarContext current
FunctionEnd

Section "un.${APP}" UnSecMain
  SectionIn RO
  Call un.QuitRunningPoussr
  ReadRegDWORD $0 HKCU "${STATE_KEY}" "FirewallRule"
  ; A silent uninstall asks for no administrator: the rule (for a program that is gone) stays.
  ${If} $0 == 1
  ${AndIfNot} ${Silent}
    DetailPrint "Removing the Windows Firewall rule '${FIREWALL_RULE}' (Windows asks for an administrator)"
    ExecShellWait "runas" "$SYSDIR\netsh.exe" 'advfirewall firewall delete rule name="${FIREWALL_RULE}"' SW_HIDE
  ${EndIf}
  DeleteRegValue HKCU "${RUN_KEY}" "${APP}"
  Delete "$SMPROGRAMS\${APP}.lnk"
  Delete "$DESKTOP\${APP}.lnk"
  Delete "$INSTDIR\${EXE}"
  Delete "$INSTDIR\poussr-window.exe"
  Delete "$INSTDIR\poussr.exe"
  Delete "$INSTDIR\WebView2Loader.dll"
  Delete "$INSTDIR\LICENSE.txt"
  Delete "$INSTDIR\poussr.ico"
  Delete "$INSTDIR\uninstall.exe"
  ; A folder that is some process's current folder cannot be removed: leave it first. The uninstaller that
  ; was started (before it handed over to its copy in %TEMP%) may still be exiting: try for up to 10 s.
  SetOutPath "$TEMP"
  StrCpy $1 0
  ${Do}
    Delete "$INSTDIR\uninstall.exe"
    RMDir "$INSTDIR"
    ${IfNot} ${FileExists} "$INSTDIR\*.*"
      ${Break}
    ${EndIf}
    IntOp $1 $1 + 1
    ${If} $1 >= 50
      ${Break}
    ${EndIf}
    Sleep 200
  ${Loop}
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "${STATE_KEY}"
  DeleteRegKey /ifempty HKCU "Software\${APP}"
SectionEnd

; Off by default: the settings, the app's credentials, the history and the certificates stay for a
; reinstall or an upgrade.
Section /o "un.Also remove my settings and data (%APPDATA%\${APP})" UnSecData
  RMDir /r "$APPDATA\${APP}"
  ; The window's own storage (WebView2), kept under the app's identifier.
  RMDir /r "$LOCALAPPDATA\io.poussr.desktop"
SectionEnd

LangString DESC_UnSecMain ${LANG_ENGLISH} "The program, its shortcuts, start at sign-in and the firewall rule."
LangString DESC_UnSecData ${LANG_ENGLISH} "Settings, app credentials, the history of events and the certificates. Leave this off to keep them for a reinstall."
!insertmacro MUI_UNFUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${UnSecMain} $(DESC_UnSecMain)
  !insertmacro MUI_DESCRIPTION_TEXT ${UnSecData} $(DESC_UnSecData)
!insertmacro MUI_UNFUNCTION_DESCRIPTION_END
