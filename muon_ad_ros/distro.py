"""The differences between the ROS 2 distributions the package runs on (Humble, Jazzy, Kilted), in one place.

Every difference is found by looking at what is installed, never by reading ROS_DISTRO or a version string:
- Fast DDS: which profile variable it reads (2.x: FASTRTPS_DEFAULT_PROFILES_FILE; 3.x:
  FASTDDS_DEFAULT_PROFILES_FILE, and its rmw warns about the old name) and whether it knows
  FASTDDS_BUILTIN_TRANSPORTS (from 2.6.7): the names its library contains, since Fast DDS reads them as literals.
- rclpy: where the QoS event callback classes live (`rclpy.qos_event` on Humble, `rclpy.event_handler` from
  Iron) and whether a subscription can count its matched publishers (`Subscription.get_publisher_count`, from
  Iron; Humble's publishers can count their subscriptions, its subscriptions cannot).
The rclpy parts import rclpy when called, so the launch file, the runner and rosenv.sh use the rest without it.

`python -m muon_ad_ros.distro` prints what it found; `python -m muon_ad_ros.distro env PROFILE` prints the shell
exports of the graph's transport (tools/rosenv.sh evaluates them).
"""
from __future__ import annotations

import ctypes.util
import glob
import mmap
import os
import sys
from functools import lru_cache
from pathlib import Path

PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"          # Fast DDS 3.x
LEGACY_PROFILE_VAR = "FASTRTPS_DEFAULT_PROFILES_FILE"  # Fast DDS 2.x (Humble 2.6, Jazzy 2.14); 3.x warns of it
BUILTIN_TRANSPORTS_VAR = "FASTDDS_BUILTIN_TRANSPORTS"  # Fast DDS 2.6.7 and later
PROFILE_VARS = (PROFILE_VAR, LEGACY_PROFILE_VAR)
FASTDDS_LIBRARIES = ("libfastdds.so", "libfastrtps.so")   # 3.x, 2.x


def _library_dirs(environ) -> list[Path]:
    dirs = []
    for env in (environ, os.environ):      # the given environment's paths first, then this process's
        dirs += [Path(d) for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
        dirs += [Path(p) / "lib" for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(sys.prefix) / "lib")      # the ROS 2 wheels install their libraries in the venv's lib/
    return dirs


def fastdds_library(environ=None) -> Path | None:
    """Returns the Fast DDS library the ROS 2 install uses (the first on the library path, the ament prefixes'
    lib/, the venv's lib/, then the linker's cache), or None when none is found."""
    environ = os.environ if environ is None else environ
    for d in _library_dirs(environ):
        for name in FASTDDS_LIBRARIES:
            found = sorted(glob.glob(str(d / f"{name}*")), key=len)
            if found:
                return Path(found[0]).resolve()
    for name in ("fastdds", "fastrtps"):
        found = ctypes.util.find_library(name)
        if found:
            for d in ("/usr/lib", "/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"):
                if (Path(d) / found).exists():
                    return (Path(d) / found).resolve()
    return None


@lru_cache(maxsize=8)
def _contains(library: Path, *names: str) -> tuple[bool, ...]:
    with open(library, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return tuple(m.find(n.encode() + b"\0") >= 0 for n in names)


def fastdds_reads(library: Path | None) -> dict[str, bool] | None:
    """Returns {variable: whether this Fast DDS library reads it} for the profile and transport variables,
    or None when there is no library to look at."""
    if library is None:
        return None
    names = (PROFILE_VAR, LEGACY_PROFILE_VAR, BUILTIN_TRANSPORTS_VAR)
    return dict(zip(names, _contains(library, *names)))


def profile_vars(environ=None) -> tuple[str, ...]:
    """Returns the variable(s) to set for a Fast DDS profile: the one the installed Fast DDS reads, or both
    names when no Fast DDS library is found (3.x then warns about the old name, 2.x ignores the new one)."""
    reads = fastdds_reads(fastdds_library(environ))
    if reads is None:
        return PROFILE_VARS
    if reads[PROFILE_VAR]:
        return (PROFILE_VAR,)
    return (LEGACY_PROFILE_VAR,)


def knows_builtin_transports(environ=None) -> bool | None:
    """Returns whether the installed Fast DDS reads FASTDDS_BUILTIN_TRANSPORTS (None: no library found)."""
    reads = fastdds_reads(fastdds_library(environ))
    return None if reads is None else reads[BUILTIN_TRANSPORTS_VAR]


def profile_in_env(environ=None) -> str:
    """Returns the profile file the environment names for the installed Fast DDS ('' = none)."""
    environ = os.environ if environ is None else environ
    for var in profile_vars(environ):
        if environ.get(var):
            return environ[var]
    return ""


def profile_segment_size(profile: str) -> int | None:
    """Returns the shared-memory segment size (bytes) a Fast DDS profile gives the default participant's
    SHM transport, or None when it sets none (no SHM user transport, or no segment_size)."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(profile).getroot()
    except (OSError, ET.ParseError):
        return None
    sizes = {}
    for desc in root.findall(".//{*}transport_descriptor"):
        if (desc.findtext("{*}type") or "").strip() == "SHM" and desc.findtext("{*}segment_size"):
            sizes[(desc.findtext("{*}transport_id") or "").strip()] = int(desc.findtext("{*}segment_size"))
    for part in root.findall(".//{*}participant"):
        if part.get("is_default_profile") == "true":
            used = [(t.text or "").strip() for t in part.findall(".//{*}transport_id")]
            found = [sizes[t] for t in used if t in sizes]
            return max(found) if found else None
    return None


def own_shm_segments() -> dict[str, int]:
    """Returns {file: size} of the Fast DDS shared-memory segments this process created (each holds the lock
    file `<segment>_el` open; the segments of peers it reads from are mapped but not locked)."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        name = os.path.basename(target)
        if (target.startswith("/dev/shm/") and name.endswith("_el") and name.startswith(("fastdds_", "fastrtps_"))
                and "_port" not in name):
            try:
                out[target[:-3]] = os.path.getsize(target[:-3])
            except OSError:
                pass
    return out


def profile_check(rmw: str, environ=None) -> tuple[bool, str, dict]:
    """Returns (in effect, message, values): whether this process's Fast DDS participant took the transport
    profile its environment names, judged by its own shared-memory segment (the profile's segment_size or
    more). A profile set under a variable this Fast DDS does not read fails here: the defaults run instead."""
    environ = os.environ if environ is None else environ
    if not rmw.startswith("rmw_fastrtps"):
        return True, f"rmw {rmw}: the Fast DDS profile does not apply", {"rmw": rmw}
    read = profile_vars(environ)
    named = [v for v in PROFILE_VARS if environ.get(v)]
    values = {"rmw": rmw, "profile_variable": ", ".join(read), "profile_variables_set": ", ".join(named) or "none"}
    profile = profile_in_env(environ) or (environ[named[0]] if named else "")
    if not profile:
        return False, (f"no Fast DDS profile: {' / '.join(read)} unset, so frames larger than Fast DDS's default "
                       "shared-memory segment travel as UDP fragments and are lost under best effort "
                       "(docs/transport.md)"), values
    values["profile"] = profile
    want = profile_segment_size(profile)
    if want is None:
        return True, f"profile {profile} (it sets no shared-memory segment size to check)", values
    segments = own_shm_segments()
    values |= {"segment_size_wanted": want, "shm_segments": ", ".join(f"{os.path.basename(k)}={v}"
                                                                      for k, v in segments.items()) or "none"}
    got = min(segments.values()) if segments else 0
    if got >= want:
        return True, f"profile {profile} in effect (shared-memory segment {got} bytes)", values
    unread = [v for v in named if v not in read]
    hint = (f"; it is set under {', '.join(unread)}, which this Fast DDS does not read: set {read[0]}"
            if unread and not any(v in named for v in read) else "")
    seen = f"the shared-memory segment is {got} bytes" if segments else "this process has no shared-memory segment"
    return False, (f"profile {profile} not in effect: {seen}, the profile asks {want} (Fast DDS's defaults "
                   f"are running){hint}"), values


# ------------------------------------------------------------------------------------------------------- rclpy

def event_callback_classes():
    """Returns rclpy's (PublisherEventCallbacks, SubscriptionEventCallbacks)."""
    try:
        from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
    except ImportError:   # Humble
        from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks
    return PublisherEventCallbacks, SubscriptionEventCallbacks


def matched_count(handle) -> int | None:
    """Returns how many endpoints on the other side DDS has matched with a publisher or subscription, or None
    where rclpy cannot tell (a subscription on Humble)."""
    count = getattr(handle, "get_subscription_count", None) or getattr(handle, "get_publisher_count", None)
    return None if count is None else count()


def report(environ=None) -> list[str]:
    """Returns what was detected, one line each."""
    environ = os.environ if environ is None else environ
    lib = fastdds_library(environ)
    reads = fastdds_reads(lib)
    lines = [f"Fast DDS library: {lib or 'not found'}"]
    if reads is not None:
        lines += [f"  reads {k}: {'yes' if v else 'no'}" for k, v in reads.items()]
    lines.append(f"profile variable(s) set by the graph: {', '.join(profile_vars(environ))}")
    try:
        import rclpy.node  # noqa: F401
    except ImportError as exc:
        lines.append(f"rclpy: not importable ({exc})")
        return lines
    pub_cls, _ = event_callback_classes()
    from rclpy.subscription import Subscription
    lines.append(f"rclpy event callbacks: {pub_cls.__module__}")
    lines.append("subscriptions count matched publishers: "
                 + ("yes" if hasattr(Subscription, "get_publisher_count") else "no (Humble's rclpy)"))
    return lines


def transport_env(default_profile: str, environ=None) -> dict:
    """Returns the environment variables of the graph's transport: the profile under the name(s) the installed
    Fast DDS reads (a profile the user named under either name is kept) and the rmw (rmw_fastrtps_cpp unless
    the user chose one)."""
    environ = os.environ if environ is None else environ
    profile = next((environ[v] for v in PROFILE_VARS if environ.get(v)), "") or default_profile
    env = {var: profile for var in profile_vars(environ)}
    env["RMW_IMPLEMENTATION"] = environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp"
    return env


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["env"] and len(argv) == 2:
        for k, v in transport_env(argv[1]).items():
            print(f"export {k}='{v}'" if "'" not in v else f'export {k}="{v}"')
        return 0
    if argv:
        print("usage: python -m muon_ad_ros.distro [env DEFAULT_PROFILE]", file=sys.stderr)
        return 2
    print("\n".join(report()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
