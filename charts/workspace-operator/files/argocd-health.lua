hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil
     and obj.status.observedGeneration < obj.metadata.generation then
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to observe the latest spec"
    return hs
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Stalled" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = c.reason .. ": " .. c.message
      return hs
    end
    if c.type == "Ready" and c.status == "True" then
      hs.status = "Healthy"
      hs.message = c.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the Workspace to be reconciled"
return hs
