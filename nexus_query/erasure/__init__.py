"""Provable erasure: one request removes documents (by source, by id, or a whole space) from every
store Nexus keeps, verifies that nothing is left, and says so in a receipt of counts.

``request_erasure`` accepts one (the API, the CLI); ``run_erasure`` carries it out (the Dagster asset
``space_erasure``, or in process). No dagster here: the pipeline wraps these functions.
"""

from nexus_query.erasure.model import (
    ERASURE_TASK_KIND,
    SCOPES,
    STEPS,
    ErasureIncomplete,
    ErasurePlan,
    ErasureReceipt,
    ErasureRequest,
    Scope,
    Step,
)
from nexus_query.erasure.run import new_request, read_receipt, request_erasure, run_erasure
from nexus_query.erasure.target import ErasureTarget, tenant_target
from nexus_query.erasure.tenant import TenantErasureReceipt, erase_tenant, request_tenant_erasure
from nexus_query.erasure.verify import Verification, files_containing, verify_erased

__all__ = ["ERASURE_TASK_KIND", "SCOPES", "STEPS", "ErasureIncomplete", "ErasurePlan", "ErasureReceipt",
           "ErasureRequest", "ErasureTarget", "Scope", "Step", "TenantErasureReceipt", "Verification",
           "erase_tenant", "files_containing", "new_request", "read_receipt", "request_erasure",
           "request_tenant_erasure", "run_erasure",
           "tenant_target", "verify_erased"]
