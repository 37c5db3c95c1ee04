-- Argo CD health check for ConnectApp and ConnectTenant (connect.tenantry.dev).
-- Install under resource.customizations.health.connect.tenantry.dev_ConnectApp
-- and ..._ConnectTenant in argocd-cm (README, "GitOps").
hs = {}
local gen = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil or gen == nil or obj.status.observedGeneration < gen then
  hs.status = "Progressing"
  hs.message = "waiting for the Tenantry operator to observe this generation"
  return hs
end
local cond = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    cond[c.type] = c
  end
end
local function msg(c)
  if c ~= nil and c.message ~= nil then return c.message end
  return ""
end
if cond["Stalled"] ~= nil and cond["Stalled"].status == "True" then
  hs.status = "Degraded"
  hs.message = msg(cond["Stalled"])
  return hs
end
if obj.kind == "ConnectTenant" and (obj.status.phase == "Uninstalled" or obj.status.phase == "Disabled") then
  hs.status = "Suspended"
  hs.message = msg(cond["Ready"])
  return hs
end
if cond["Reconciling"] ~= nil and cond["Reconciling"].status == "True" then
  hs.status = "Progressing"
  hs.message = msg(cond["Reconciling"])
  return hs
end
if cond["Ready"] ~= nil and cond["Ready"].status == "True" then
  hs.status = "Healthy"
  hs.message = msg(cond["Ready"])
  return hs
end
hs.status = "Degraded"
hs.message = msg(cond["Ready"])
return hs
