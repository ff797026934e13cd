"""Device info from the User-Agent, with a maintained parser (the guide's substring checks read Edge as
Chrome, an iPhone as macOS and Android as Linux)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from ua_parser import BasicResolver, Parser, load_lazy_builtins

MAX_USER_AGENT = 512

_BROWSER_NAMES = {
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Other": "Unknown",
}
_OS_NAMES = {"Mac OS X": "macOS", "Other": "Unknown"}
_DESKTOP_OS = {"Windows", "macOS", "Linux", "Ubuntu", "Fedora", "Debian", "Chrome OS", "FreeBSD", "OpenBSD"}


class DeviceType(StrEnum):
    DESKTOP = "Desktop"
    MOBILE = "Mobile"
    TABLET = "Tablet"
    BOT = "Bot"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Device:
    user_agent: str
    ip: str | None
    browser: str
    os: str
    device: DeviceType

    def info(self) -> dict[str, str | None]:
        """The guide's ``device_info`` object."""
        fingerprint = hashlib.sha256((self.user_agent + (self.ip or "")).encode()).hexdigest()
        return {
            "fingerprint": fingerprint,
            "userAgent": self.user_agent,
            "ip": self.ip,
            "browser": self.browser,
            "os": self.os,
            "device": self.device.value,
        }


def _device_type(user_agent: str, os_name: str, device_family: str) -> DeviceType:
    if not user_agent:
        return DeviceType.UNKNOWN
    if device_family == "Spider":
        return DeviceType.BOT
    if device_family == "iPad" or "Tablet" in user_agent:
        return DeviceType.TABLET
    if os_name == "Android":
        # Android phones say "Mobile"; Android tablets do not.
        return DeviceType.MOBILE if "Mobile" in user_agent else DeviceType.TABLET
    if device_family in ("iPhone", "iPod") or "Mobi" in user_agent:
        return DeviceType.MOBILE
    return DeviceType.DESKTOP if os_name in _DESKTOP_OS else DeviceType.UNKNOWN


def parse_device(user_agent: str | None, ip: str | None) -> Device:
    user_agent = (user_agent or "").replace("\x00", "")[:MAX_USER_AGENT]  # no NUL in PostgreSQL text
    return Device(user_agent, ip, *_classify(user_agent))


# The pure-Python resolver, compiling each pattern the first time it is tried: results are cached below, so
# speed matters little, while the compiled-everything resolvers cost 20-30 MB per process.
_PARSER = Parser(BasicResolver(load_lazy_builtins()))


@lru_cache(maxsize=4096)
def _classify(user_agent: str) -> tuple[str, str, DeviceType]:
    """Browser, OS and type: the same few agents come back on every refresh, so they are parsed once."""
    parsed = _PARSER.parse(user_agent).with_defaults()
    browser = _BROWSER_NAMES.get(parsed.user_agent.family, parsed.user_agent.family)
    os_name = _OS_NAMES.get(parsed.os.family, parsed.os.family)
    return browser, os_name, _device_type(user_agent, os_name, parsed.device.family)


_LINUX = {"Linux", "Ubuntu", "Fedora", "Debian"}


def _os_family(name: object) -> object:
    # Firefox names the distribution only sometimes: any Linux is one family.
    return "Linux" if name in _LINUX else name


def os_names(name: str) -> list[str]:
    """The OS names ``same_device_family`` takes for ``name``'s family."""
    return sorted(_LINUX) if name in _LINUX else [name]


def same_device_family(recorded: dict[str, object], presented: Device) -> bool:
    """A refresh from another browser or OS family than the session's is not the same device."""
    return recorded.get("browser") == presented.browser and _os_family(recorded.get("os")) == _os_family(presented.os)
