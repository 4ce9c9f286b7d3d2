import BenchModel
import STLink

/// What `probe --programmer stlink` finds, changing nothing.
public struct STM32ProbeReport: Sendable {
    public var programmer: ProgrammerIdentity
    public var target: STM32Target?
    public var readProtected: Bool?
    public var problem: RecoveryError?
}

public enum STM32Probe {
    public static func run(_ link: STLink) -> STM32ProbeReport {
        var report = STM32ProbeReport(programmer: link.identity)
        defer { link.disconnect() }
        do {
            let idcode = try link.connect()
            report.programmer = link.identity
            report.programmer.targetVoltage = try? link.targetVoltage()
            let target = try STM32Target.identify(through: link, debugPortIDCode: idcode)
            report.target = target
            report.readProtected = try STM32FlashControllers.controller(for: target, link: link).isReadProtected()
        } catch let error as STLinkError {
            report.programmer = link.identity
            report.problem = .stm32(.link(error))
        } catch let error as STM32Error {
            report.problem = .stm32(error)
        } catch {
            report.problem = .stm32(.controller("\(error)"))
        }
        return report
    }
}
