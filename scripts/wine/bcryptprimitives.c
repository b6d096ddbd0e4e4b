/* A stand-in for Windows' bcryptprimitives.dll, for running Poussr's Windows build under Wine 8.0 in the tests.
 *
 * Rust's standard library (1.78 and later) takes its random numbers (HashMap seeds, among others) from
 * ProcessPrng in bcryptprimitives.dll, which every Windows 10 and 11 has and Wine 8.0 does not. This DLL
 * provides that one function on top of RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * The test setup (scripts/wine.sh) builds it with mingw-w64 into the tests' Wine prefix; it is never
 * shipped: the installer is for real Windows, which has the real DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Fills `data` with `length` random bytes. Like the real one, it always succeeds. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
