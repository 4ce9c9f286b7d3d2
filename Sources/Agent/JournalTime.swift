import BenchModel
import Glibc

/// The times `status --since` and `--until` take, as journalctl spells the common ones, in local time:
/// `now`, `today`, `yesterday`, `tomorrow` (midnight), `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` (also with `T`),
/// `HH:MM[:SS]` (today), a relative `-2h`, `-30min`, `-1d`, `-90s`, `-1w`, and `@SECONDS` since the epoch.
public enum JournalTime {
    /// Why a time was not understood.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Microseconds since the epoch for `text`, `now` being `now` microseconds since the epoch.
    public static func microseconds(_ text: String, now: UInt64) throws(ParseError) -> UInt64 {
        let spelled = text.trimmingWhitespace
        let nowSeconds = time_t(now / 1_000_000)
        func midnight(daysFromToday days: Int) -> UInt64 {
            var parts = tm()
            var seconds = nowSeconds
            localtime_r(&seconds, &parts)
            parts.tm_hour = 0; parts.tm_min = 0; parts.tm_sec = 0
            parts.tm_mday += Int32(days)
            parts.tm_isdst = -1
            return UInt64(max(0, mktime(&parts))) * 1_000_000
        }
        switch spelled {
        case "now": return now
        case "today": return midnight(daysFromToday: 0)
        case "yesterday": return midnight(daysFromToday: -1)
        case "tomorrow": return midnight(daysFromToday: 1)
        default: break
        }
        if spelled.hasPrefix("@"), let seconds = UInt64(spelled.dropFirst()) { return seconds * 1_000_000 }
        if let sign = spelled.first, sign == "-" || sign == "+", let offset = relativeMicroseconds(spelled.dropFirst()) {
            return sign == "-" ? (now > offset ? now - offset : 0) : now + offset
        }
        if let local = localTime(spelled, today: nowSeconds) { return local }
        throw ParseError(description: "'\(text)' is not a time: use now, today, yesterday, YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]', HH:MM, -2h, -30min, -1d or @SECONDS")
    }

    /// `2h`, `30min`, `1d`, `90s`, `1w`, `500ms` in microseconds.
    private static func relativeMicroseconds(_ text: Substring) -> UInt64? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard let amount = UInt64(digits) else { return nil }
        let units: [String: UInt64] = ["us": 1, "ms": 1_000, "s": 1_000_000, "sec": 1_000_000, "m": 60_000_000, "min": 60_000_000,
                                       "h": 3_600_000_000, "hour": 3_600_000_000, "d": 86_400_000_000, "day": 86_400_000_000,
                                       "w": 604_800_000_000, "week": 604_800_000_000]
        guard let unit = units[text.dropFirst(digits.count).trimmingWhitespace] else { return nil }
        let (product, overflow) = amount.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }

    /// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]`, `YYYY-MM-DDTHH:MM[:SS]` or `HH:MM[:SS]` (today), local time.
    private static func localTime(_ text: String, today: time_t) -> UInt64? {
        let halves = text.split(whereSeparator: { $0 == " " || $0 == "T" }).map(String.init)
        guard (1...2).contains(halves.count) else { return nil }
        var parts = tm()
        var seconds = today
        localtime_r(&seconds, &parts)
        var clock: String?
        if halves[0].contains("-") {
            let date = halves[0].split(separator: "-", omittingEmptySubsequences: false).map { Int32($0) }
            guard date.count == 3, let year = date[0], let month = date[1], let day = date[2], halves[0].count == 10,
                  (1...12).contains(month), (1...31).contains(day) else { return nil }
            parts.tm_year = year - 1900; parts.tm_mon = month - 1; parts.tm_mday = day
            parts.tm_hour = 0; parts.tm_min = 0; parts.tm_sec = 0
            clock = halves.count == 2 ? halves[1] : nil
        } else {
            guard halves.count == 1 else { return nil }
            clock = halves[0]
        }
        if let clock {
            let fields = clock.split(separator: ":", omittingEmptySubsequences: false).map { Int32($0) }
            guard (2...3).contains(fields.count), let hour = fields[0], let minute = fields[1], (0...23).contains(hour), (0...59).contains(minute),
                  fields.count == 2 || fields[2].map({ (0...60).contains($0) }) == true else { return nil }
            parts.tm_hour = hour; parts.tm_min = minute; parts.tm_sec = fields.count == 3 ? fields[2]! : 0
        }
        parts.tm_isdst = -1
        let epoch = mktime(&parts)
        return epoch < 0 ? nil : UInt64(epoch) * 1_000_000
    }

    /// Microseconds since the epoch now.
    public static var now: UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec / 1000)
    }

    /// `microseconds` as local `YYYY-MM-DD HH:MM:SS`.
    public static func localDescription(_ microseconds: UInt64) -> String {
        var seconds = time_t(microseconds / 1_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return String(cFormat: "%04d-%02d-%02d %02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}
