import Parts

/// A DfuSe alternate setting's memory description (ST's UM0424 and AN3156), as its interface string
/// gives it: "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg" — a name, then for each region
/// its start address and runs of `count*size` units (size in bytes, K or M), each with a letter whose
/// bits say readable (1), erasable (2) and writable (4), 'a' being 1.
public struct DfuSeMemoryLayout: Sendable, Equatable {
    public struct Unit: Sendable, Equatable {
        public var address: UInt32
        public var size: Int
        public var readable: Bool
        public var erasable: Bool
        public var writable: Bool
    }

    public var name: String
    /// Every unit in address order.
    public var units: [Unit]

    /// Parses an interface string; nil for one that is not a DfuSe memory description.
    public init?(_ text: String) {
        guard text.hasPrefix("@") else { return nil }
        let fields = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 3, fields.count % 2 == 1 else { return nil }
        name = fields[0].trimmedOfSpaces
        units = []
        for i in stride(from: 1, to: fields.count, by: 2) {
            let start = fields[i].trimmedOfSpaces
            guard start.lowercased().hasPrefix("0x"), var address = UInt32(start.dropFirst(2), radix: 16) else { return nil }
            for run in fields[i + 1].split(separator: ",") {
                let parts = String(run).trimmedOfSpaces.split(separator: "*")
                guard parts.count == 2, let count = Int(parts[0]), count > 0, count <= 4096 else { return nil }
                var spec = Substring(parts[1])
                guard let kind = spec.popLast(), let bits = kind.asciiValue, (0x61...0x67).contains(bits) else { return nil }
                var multiplier = 1
                if let unit = spec.last, !unit.isNumber {
                    switch unit {
                    case "K": multiplier = 1024
                    case "M": multiplier = 1024 * 1024
                    case " ", "B": multiplier = 1
                    default: return nil
                    }
                    spec = spec.dropLast()
                }
                guard let number = Int(String(spec).trimmedOfSpaces), number > 0 else { return nil }
                let flags = bits - 0x60
                for _ in 0..<count {
                    units.append(Unit(address: address, size: number * multiplier, readable: flags & 1 != 0, erasable: flags & 2 != 0, writable: flags & 4 != 0))
                    let (next, overflow) = address.addingReportingOverflow(UInt32(number * multiplier))
                    guard !overflow else { return nil }
                    address = next
                }
            }
        }
        guard !units.isEmpty else { return nil }
    }

    public var base: UInt32 { units[0].address }
    public var size: Int { units.reduce(0) { $0 + $1.size } }

    /// The units as a flash geometry: equal pages, or sectors of their sizes.
    public var geometry: FlashGeometry {
        let sizes = units.map(\.size)
        return Set(sizes).count == 1 ? .pages(size: sizes[0]) : .sectors(sizes)
    }

    /// The description again, for a simulated device's interface string.
    public var text: String {
        var runs: [String] = []
        var i = 0
        while i < units.count {
            var j = i
            while j + 1 < units.count, units[j + 1].size == units[i].size, units[j + 1].flags == units[i].flags { j += 1 }
            let size = units[i].size
            let (number, unit) = size % 1024 == 0 ? (size / 1024, "K") : (size, " ")
            runs.append(String(repeating: "0", count: max(0, 2 - String(j - i + 1).count)) + "\(j - i + 1)*"
                        + String(repeating: "0", count: max(0, 3 - String(number).count)) + "\(number)\(unit)" + String(UnicodeScalar(0x60 + units[i].flags)))
            i = j + 1
        }
        return "@\(name) /0x" + String(base, radix: 16, uppercase: true).leftPadded(to: 8) + "/" + runs.joined(separator: ",")
    }

    /// A layout of `sizes` from `base`, every unit readable, erasable and writable.
    public init(name: String, base: UInt32, sizes: [Int]) {
        self.name = name
        var address = base
        units = sizes.map { size in
            defer { address += UInt32(size) }
            return Unit(address: address, size: size, readable: true, erasable: true, writable: true)
        }
    }
}

extension DfuSeMemoryLayout.Unit {
    var flags: UInt8 { (readable ? 1 : 0) | (erasable ? 2 : 0) | (writable ? 4 : 0) }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
    var trimmedOfSpaces: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}
