"""An import-linter contract: a domain package is used by others only through its public modules."""

import grimp
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class PublicModulesContract(Contract):
    """Modules outside a domain import only its public modules (e.g. `service`, `flows`).

    - domains: the domain packages (`app.accounts`, ...).
    - public: the module names others may import (`service`, `flows`).
    - importers_exempt: modules that compose the domains and may import anything (the app factory).
    - also_public: extra module paths others may import (e.g. `app.core.*` is not a domain and is listed
      there if it is checked).
    """

    type_name = "public_modules"

    domains = fields.ListField(subfield=fields.StringField())
    public = fields.ListField(subfield=fields.StringField())
    importers_exempt = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        domains = [str(d) for d in self.domains]  # type: ignore[attr-defined]
        public = {str(p) for p in self.public}  # type: ignore[attr-defined]
        exempt = {str(m) for m in (self.importers_exempt or [])}  # type: ignore[attr-defined]
        broken = []
        for domain in domains:
            for imported in sorted(graph.find_descendants(domain)):
                relative = imported[len(domain) + 1 :].split(".")[0]
                if relative in public:
                    continue
                for importer in sorted(graph.find_modules_that_directly_import(imported)):
                    if importer == domain or importer.startswith(domain + ".") or importer in exempt:
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = ", ".join(str(d["line_number"]) for d in details)
                    broken.append(f"{importer} -> {imported} (l. {lines})")
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["broken"]:
            output.print_error(line)
            output.new_line()
